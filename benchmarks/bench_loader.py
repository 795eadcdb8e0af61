"""Loader throughput: graphs per second into ready batches, in one process, from a store on disk.

Side by side in one run, each loader measured in a fresh process of its own (so that its peak memory
is its own; peak = ``VmHWM`` after ``/proc/self/clear_refs``, minus the process's RSS before the run):

1. **ours**: ``GraphLoader(GraphStream(store, rows, batch_size, shuffle=True), num_workers=0)``, one
   epoch, every batch a ``GraphBatch`` (atomic numbers; the 92-dim features and Gaussians are looked
   up on the model's device). One warm-up batch first (imports, codecs).
2. **(b) PyG**: ``torch_geometric.loader.DataLoader(list_of_Data, batch_size, shuffle=True)``, one
   epoch, over ``Data`` objects built before timing with ``crystal_data.torch_graphs.to_data`` (``x`` =
   92-dim features, ``z``, ``pos``, ``edge_index``, ``edge_distance``, ``edge_image``, ``lattice``, ``uid``,
   ``y``), whose build time and memory are reported separately; and **(b-lean)**, the same over
   minimal ``Data(x, edge_index, edge_distance, y)``, PyG's best case.
3. **(a) reference**: a reimplementation of the reference ``__getitem__`` (crysgnn-method.md §1.2-1.3),
   per item in Python on ``--reference-n`` crystals: pymatgen ``Structure`` from the record (lattice,
   species, fractional coordinates; the CIF parse is not counted), ``get_all_neighbors(8,
   include_index=True)``, each site's list sorted by distance and cut to 12, padded with index 0 at
   9 Å, 92-dim features from ``atom_init.json``, Gaussian expansion (41 centres, numpy) to (N, 12, 41),
   ``SpacegroupAnalyzer`` with default tolerances (space-group number and crystal system), the N x N
   capped adjacency target in a Python double loop; then a CGCNN-style collate per batch. This is the
   first epoch: the reference's ``lru_cache`` makes later epochs cheaper but keeps every crystal in RAM.

    .venv/bin/python benchmarks/bench_loader.py --store /tmp/store-33k-b --batch-size 128 --n 33189
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import multiprocessing as mp
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np
from common import cpu_model, md_table, publish, usable_cores

REPO_ROOT = Path(__file__).resolve().parents[1]
LABEL = "formation_energy_per_atom"
CUTOFF, MAX_NEIGHBORS = 8.0, 12
GAUSSIAN_CENTRES = np.arange(0.0, CUTOFF + 0.2, 0.2)
GAUSSIAN_WIDTH = 0.2
ADJACENCY_CAP = 5
LIBRARIES = ("numpy", "torch", "torch_geometric", "zarr", "pymatgen")


# ------------------------------------------------------------------------------------------- memory


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_mb() -> float:
    return _status_kb("VmRSS") / 1024


def reset_peak() -> None:
    """Make the peak RSS (VmHWM) restart from the current RSS."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_mb() -> float:
    return _status_kb("VmHWM") / 1024


# ------------------------------------------------------------------------------------------- inputs


def choose_rows(num_records: int, n: int, seed: int) -> np.ndarray:
    """``n`` store rows drawn without replacement (all rows when ``n`` covers the store), ascending."""
    if n >= num_records:
        return np.arange(num_records)
    return np.sort(np.random.default_rng(seed).choice(num_records, size=n, replace=False))


def targets(store_path: Path, rows: np.ndarray) -> np.ndarray:
    from crystal_data.store.reader import Store

    column = Store(store_path).records_table(columns=[LABEL]).column(LABEL)
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)[rows]


# ---------------------------------------------------------------------------------------------- ours


def measure_ours(store: Path, rows: np.ndarray, batch_size: int, buffer_shards: int, seed: int) -> dict:
    from crysgnn_models.loader import GraphLoader, GraphStream
    from crysgnn_models.loader.window import load_window

    y = targets(store, rows)
    next(iter(GraphStream(store, rows[:batch_size], batch_size=batch_size)))  # warm-up
    gc.collect()
    before = rss_mb()
    reset_peak()
    stream = GraphStream(store, rows, batch_size=batch_size, seed=seed, buffer_shards=buffer_shards, y=y)
    graphs = batches = 0
    start = time.perf_counter()
    for batch in GraphLoader(stream, num_workers=0):
        graphs += batch.num_graphs
        batches += 1
    seconds = time.perf_counter() - start
    peak = peak_mb() - before
    first = stream.epoch_order().shards[0]
    window_mb = load_window(stream.source, first, len(stream.shard_sizes)).nbytes / 2**20
    return {
        "graphs": graphs,
        "batches": batches,
        "seconds": seconds,
        "peak_mb": peak,
        "window_mb": window_mb,
        "window_shards": len(first),
    }


# ------------------------------------------------------------------------------------------- (b) PyG


def lean_data(sample, y: float):
    import torch
    from torch_geometric.data import Data

    from crystal_data.graphs.atom_features import atom_feature_table

    return Data(
        x=torch.from_numpy(atom_feature_table()[sample.atomic_numbers]),
        edge_index=torch.from_numpy(sample.edge_index.astype(np.int64)),
        edge_distance=torch.from_numpy(sample.edge_distance),
        y=torch.tensor([y], dtype=torch.float32),
    )


def measure_pyg(store: Path, rows: np.ndarray, batch_size: int, seed: int, lean: bool) -> dict:
    import torch
    from torch_geometric.loader import DataLoader

    from crystal_data.store.reader import Store
    from crystal_data.torch_graphs import to_data

    make: Callable = lean_data if lean else to_data
    y = targets(store, rows)
    opened = Store(store)
    next(iter(DataLoader([make(opened[0], 0.0)], batch_size=1)))  # warm-up
    del opened
    gc.collect()
    before = rss_mb()
    reset_peak()
    start = time.perf_counter()
    wanted = np.full(len(Store(store)), -1)
    wanted[rows] = np.arange(len(rows))
    data = [None] * len(rows)
    for i, sample in enumerate(Store(store)):  # shard by shard
        if wanted[i] >= 0:
            data[wanted[i]] = make(sample, float(y[wanted[i]]))
    build_seconds = time.perf_counter() - start
    gc.collect()
    built_mb = rss_mb() - before
    torch.manual_seed(seed)
    graphs = batches = 0
    start = time.perf_counter()
    for batch in DataLoader(data, batch_size=batch_size, shuffle=True):
        graphs += batch.num_graphs
        batches += 1
    seconds = time.perf_counter() - start
    return {
        "graphs": graphs,
        "batches": batches,
        "seconds": seconds,
        "peak_mb": peak_mb() - before,
        "build_seconds": build_seconds,
        "built_mb": built_mb,
    }


# ------------------------------------------------------------------------------------- (a) reference


def atom_init_vectors() -> dict[int, np.ndarray]:
    """``atom_init.json`` as the reference holds it: element number -> 92-dim float vector."""
    import json
    from importlib import resources

    raw = json.loads(resources.files("crystal_data").joinpath("data/atom_init.json").read_text())
    return {int(key): np.array(value, dtype=float) for key, value in raw.items()}


def reference_item(lattice, numbers, frac, target: float, atom_init: dict[int, np.ndarray]):
    """One crystal as the reference ``__getitem__`` makes it (without the CIF parse)."""
    import torch
    from pymatgen.core import Lattice, Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from crystal_data.schema import CRYSTAL_SYSTEMS

    structure = Structure(Lattice(lattice), [int(z) for z in numbers], frac)
    features = np.vstack([atom_init[site.specie.number] for site in structure])
    index, distance = [], []
    for found in structure.get_all_neighbors(CUTOFF, include_index=True):
        nearest = sorted(found, key=lambda neighbour: neighbour[1])[:MAX_NEIGHBORS]
        missing = MAX_NEIGHBORS - len(nearest)
        index.append([neighbour[2] for neighbour in nearest] + [0] * missing)
        distance.append([neighbour[1] for neighbour in nearest] + [CUTOFF + 1.0] * missing)
    index, distance = np.array(index), np.array(distance)
    gaussians = np.exp(-((distance[..., np.newaxis] - GAUSSIAN_CENTRES) ** 2) / GAUSSIAN_WIDTH**2)
    analyzer = SpacegroupAnalyzer(structure)
    spacegroup = analyzer.get_space_group_number() - 1
    system = CRYSTAL_SYSTEMS.index(analyzer.get_crystal_system())
    n = len(structure)
    adjacency = [[0] * n for _ in range(n)]
    for i in range(n):
        for j in index[i]:
            if adjacency[i][j] < ADJACENCY_CAP:
                adjacency[i][j] += 1
    return (
        (torch.Tensor(features), torch.Tensor(gaussians), torch.LongTensor(index)),
        torch.Tensor([target]),
        spacegroup,
        system,
        torch.LongTensor(adjacency).flatten(),
    )


def reference_collate(items: Sequence) -> tuple:
    """CGCNN's ``collate_pool``: concatenated atoms and neighbour slots, offset indices, per-crystal
    atom index lists; plus the stacked pretraining labels."""
    import torch

    atoms, gaussians, indices, crystal_atoms, ys, spacegroups, systems, adjacency = ([] for _ in range(8))
    base = 0
    for (atom, gaussian, index), y, spacegroup, system, adj in items:
        n = atom.shape[0]
        atoms.append(atom)
        gaussians.append(gaussian)
        indices.append(index + base)
        crystal_atoms.append(torch.LongTensor(np.arange(n) + base))
        ys.append(y)
        spacegroups.append(spacegroup)
        systems.append(system)
        adjacency.append(adj)
        base += n
    return (
        (torch.cat(atoms), torch.cat(gaussians), torch.cat(indices), crystal_atoms),
        torch.stack(ys),
        torch.LongTensor(spacegroups),
        torch.LongTensor(systems),
        torch.cat(adjacency),
    )


def measure_reference(store: Path, rows: np.ndarray, batch_size: int) -> dict:
    import warnings

    from crystal_data.store.reader import Store

    warnings.simplefilter("ignore")  # pymatgen's symmetry warnings
    y = np.nan_to_num(targets(store, rows))
    records = Store(store).records[rows.tolist()]
    inputs = [
        (np.asarray(r["lattice"]), np.asarray(r["atomic_numbers"]), np.asarray(r["frac_coords"]), float(t))
        for r, t in zip(records.select("lattice", "atomic_numbers", "frac_coords").iter_rows(named=True), y)
    ]
    atom_init = atom_init_vectors()
    reference_collate([reference_item(*inputs[0], atom_init)])  # warm-up
    start = time.perf_counter()
    graphs = batches = 0
    for b in range(0, len(inputs), batch_size):
        chunk = [reference_item(*item, atom_init) for item in inputs[b : b + batch_size]]
        reference_collate(chunk)
        graphs += len(chunk)
        batches += 1
    return {"graphs": graphs, "batches": batches, "seconds": time.perf_counter() - start}


# ---------------------------------------------------------------------------------------------- main


def in_fresh_process(fn: Callable[..., dict], *args) -> dict:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def code_version() -> str:
    try:
        git = ["git", "-C", str(REPO_ROOT)]
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        status = subprocess.run(
            [*git, "status", "--porcelain", "--", "crysgnn_models/loader"], capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    dirty = " (crysgnn_models/loader differs from it)" if status.stdout.strip() else ""
    return f"git {head.stdout.strip()}{dirty}"


def report(args: argparse.Namespace, n: int, results: dict[str, dict]) -> str:
    ours = results["ours"]
    rate = {name: r["graphs"] / r["seconds"] for name, r in results.items()}
    names = {
        "ours": "ours: `GraphLoader(GraphStream)`, from disk",
        "pyg": "(b) PyG `DataLoader`, in-memory `to_data` list",
        "pyg_lean": "(b-lean) PyG `DataLoader`, in-memory `Data(x, edge_index, edge_distance, y)`",
        "reference": "(a) reference per-item featurisation + CGCNN collate",
    }
    rows = []
    for name, r in results.items():
        peak = f"{r['peak_mb']:,.0f}" if "peak_mb" in r else "—"
        ratio = "1" if name == "ours" else f"{rate['ours'] / rate[name]:,.1f}x"
        rows.append(
            [
                names[name],
                f"{r['graphs']:,}",
                r["batches"],
                f"{r['seconds']:.3f}",
                f"{rate[name]:,.0f}",
                ratio,
                peak,
            ]
        )
    table = md_table(
        ["loader", "graphs", "batches", "seconds", "graphs/s", "ours / this", "peak RSS above start (MB)"],
        rows,
    )
    builds = [
        f"- {names[name].split(',')[0]} `Data` list built before timing: {r['build_seconds']:.1f} s "
        f"({r['graphs'] / r['build_seconds']:,.0f} graphs/s), {r['built_mb']:,.0f} MB resident"
        for name, r in results.items()
        if "build_seconds" in r
    ]
    versions = ", ".join(f"{name} {metadata.version(name.replace('_', '-'))}" for name in LIBRARIES)
    return "\n".join(
        [
            f"Store `{args.store}`: {n:,} crystals, batch size {args.batch_size}, buffer_shards "
            f"{args.buffer_shards}; reference on the first {results['reference']['graphs']} of them.",
            "",
            table,
            "",
            *builds,
            f"- ours: one window ({ours['window_shards']} shards) holds {ours['window_mb']:.1f} MB; a worker "
            "keeps at most two",
            f"- date {dt.date.today().isoformat()}; CPU {cpu_model()}; {usable_cores()} core(s); "
            f"Python {platform.python_version()}; {versions}; code {code_version()}",
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="a crystal_data store")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--n", type=int, default=None, help="crystals (default: the whole store)")
    parser.add_argument("--reference-n", type=int, default=200, help="crystals for (a) (default 200)")
    parser.add_argument("--buffer-shards", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-lean", action="store_true", help="leave out (b-lean)")
    parser.add_argument("--out-md", type=Path, default=None, help="also write the report to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from crystal_data.store.reader import Store

    num_records = len(Store(args.store))
    rows = choose_rows(num_records, args.n or num_records, args.seed)
    reference_rows = rows[np.random.default_rng(args.seed).permutation(len(rows))[: args.reference_n]]
    results = {}
    print("ours ...", file=sys.stderr)
    results["ours"] = in_fresh_process(
        measure_ours, args.store, rows, args.batch_size, args.buffer_shards, args.seed
    )
    print("(b) PyG ...", file=sys.stderr)
    results["pyg"] = in_fresh_process(measure_pyg, args.store, rows, args.batch_size, args.seed, False)
    if not args.skip_lean:
        print("(b-lean) PyG ...", file=sys.stderr)
        results["pyg_lean"] = in_fresh_process(
            measure_pyg, args.store, rows, args.batch_size, args.seed, True
        )
    print(f"(a) reference on {len(reference_rows)} crystals ...", file=sys.stderr)
    results["reference"] = in_fresh_process(
        measure_reference, args.store, np.sort(reference_rows), args.batch_size
    )
    text = report(args, len(rows), results)
    return publish(text, args.out_md)


if __name__ == "__main__":
    sys.exit(main())
