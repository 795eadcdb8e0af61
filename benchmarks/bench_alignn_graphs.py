"""ALIGNN graphs (atom graph + line graph) precomputed into a store: build cost and bytes per crystal,
against the store's own knn multigraph built from the same records in the same run.

Measured on the embedded sample (200 crystals, built into ``--work``) and on the first ``--shards``
shards of ``--store`` (their records and knn graphs copied into ``--work`` with a manifest cut to
them; ``--store`` itself is only read):

1. Build cost per crystal, one process: ``alignn_graph`` against the baseline ``nearest_neighbor_graph``
   (``GraphConfig()``, what every store build runs) on the same crystals: ms per crystal (mean, p50,
   p95, max) and the ratio. For scale, pymatgen's ``Structure.get_all_neighbors`` with ALIGNN's cutoff
   growth (the neighbour search ALIGNN's own featurizer runs, without its Python edge loop or the line
   graph) on the first ``--pymatgen-sample`` crystals.
2. ``add_graphs`` end to end with ``--workers`` processes (read records, build, compress, write,
   checksum, manifest): seconds and crystals per second.
3. Bytes on disk per crystal: ``graphs/<alignn hash>/`` against ``graphs/<knn hash>/`` of the same
   shards, per array, with edges and line-graph pairs per crystal.

    .venv/bin/python benchmarks/bench_alignn_graphs.py --store /tmp/store-33k-b --shards 3 \\
        --work /tmp/alignn-bench --workers 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_model, md_table, publish, usable_cores  # noqa: E402

from crystal_data.graphs.alignn import alignn_graph  # noqa: E402
from crystal_data.graphs.config import AlignnGraphConfig, GraphConfig  # noqa: E402
from crystal_data.graphs.neighbors import nearest_neighbor_graph  # noqa: E402
from crystal_data.store import open_store  # noqa: E402
from crystal_data.store.add_graphs import add_graphs  # noqa: E402

ALIGNN, KNN = AlignnGraphConfig(), GraphConfig()


def sample_store(work: Path) -> Path:
    from crystal_data.build import BuildSettings, build_from_cif_folder
    from crystal_data.sample import SAMPLE_LABELS, SAMPLE_SOURCE, SAMPLE_SOURCE_VERSION, sample_dir

    out = work / "sample"
    settings = BuildSettings(
        source=SAMPLE_SOURCE, source_version=SAMPLE_SOURCE_VERSION, label_units=dict(SAMPLE_LABELS)
    )
    build_from_cif_folder(sample_dir(), out, settings, workers=1, overwrite=True, progress=False)
    return out


def first_shards(store: Path, shards: int, work: Path) -> Path:
    """A copy of ``store`` holding only its first ``shards`` shards (records and default graphs), with
    a manifest cut to them."""
    from crystal_data.store.manifest import file_sha256, store_files

    out = work / f"{store.name}-first-{shards}"
    shutil.rmtree(out, ignore_errors=True)
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["shards"] = manifest["shards"][:shards]
    for shard in manifest["shards"]:
        records = Path("records") / f"{shard['name']}.parquet"
        graphs = Path("graphs") / manifest["default_graphs"] / f"{shard['name']}.zarr"
        (out / records).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(store / records, out / records)
        shutil.copytree(store / graphs, out / graphs)
    manifest["files"] = {
        p.relative_to(out).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
        for p in store_files(out)
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def crystals(store: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(lattice, frac coords, atomic numbers) of every record."""
    out = []
    for shard in open_store(store).iter_shards():
        for g in range(len(shard)):
            n0, n1 = shard.node_ptr[g], shard.node_ptr[g + 1]
            out.append((shard.lattices[g], shard.frac_coords[n0:n1], shard.atomic_numbers[n0:n1]))
    return out


def timed(build, items) -> np.ndarray:
    seconds = np.empty(len(items))
    for k, item in enumerate(items):
        start = time.perf_counter()
        build(*item)
        seconds[k] = time.perf_counter() - start
    return seconds * 1e3


def pymatgen_neighbors(lattice: np.ndarray, frac: np.ndarray, numbers: np.ndarray) -> None:
    from pymatgen.core import Lattice, Structure

    structure = Structure(Lattice(lattice), numbers.tolist(), frac)
    radius = ALIGNN.cutoff
    while min(len(n) for n in structure.get_all_neighbors(radius)) < ALIGNN.max_neighbors:
        longest = max(structure.lattice.abc)
        radius = longest if radius < longest else 2 * radius


def folder_bytes(folder: Path) -> dict[str, int]:
    """Bytes on disk per array name over every shard group in ``folder`` (group metadata as ``zarr.json``)."""
    sizes: dict[str, int] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            rel = path.relative_to(folder).parts
            name = rel[1] if len(rel) > 2 else "zarr.json"
            sizes[name] = sizes.get(name, 0) + path.stat().st_size
    return sizes


def measure(label: str, store: Path, args: argparse.Namespace) -> dict:
    items = crystals(store)
    knn_ms = timed(lambda lattice, frac, _: nearest_neighbor_graph(lattice, frac, KNN), items)
    alignn_ms = timed(lambda lattice, frac, _: alignn_graph(lattice, frac, ALIGNN), items)
    sample = items[: args.pymatgen_sample]
    pymatgen_ms = timed(pymatgen_neighbors, sample)
    ours_on_sample = alignn_ms[: len(sample)]
    report = add_graphs(store, ALIGNN, workers=args.workers, progress=False)
    alignn_store = open_store(store, graphs=ALIGNN.hash)
    edges = pairs = 0
    for shard in alignn_store.iter_shards():
        edges += int(shard.edge_ptr[-1])
        pairs += int(shard.line_ptr[-1])
    return {
        "label": label,
        "crystals": len(items),
        "atoms": sum(len(item[1]) for item in items),
        "knn_ms": knn_ms,
        "alignn_ms": alignn_ms,
        "pymatgen_ms": pymatgen_ms,
        "ours_on_sample_ms": ours_on_sample,
        "add_seconds": report.seconds,
        "edges": edges,
        "pairs": pairs,
        "knn_edges": sum(s["edges"] for s in alignn_store.manifest["shards"]),
        "alignn_bytes": folder_bytes(store / "graphs" / ALIGNN.hash),
        "knn_bytes": folder_bytes(store / "graphs" / KNN.hash),
    }


RAW_BYTES = {
    "edge_index": 8, "edge_distance": 4, "edge_image": 3, "edge_vector": 12, "line_index": 8, "line_cos": 4
}  # fmt: skip
"""Uncompressed bytes per edge (per line-graph pair for ``line_*``)."""


def stats(ms: np.ndarray) -> str:
    return f"{ms.mean():.2f} / {np.median(ms):.2f} / {np.percentile(ms, 95):.2f} / {ms.max():.1f}"


def cost_table(results: list[dict]) -> str:
    rows = [
        [r["label"], r["crystals"], stats(r["knn_ms"]), stats(r["alignn_ms"]),
         f"{r['alignn_ms'].mean() / r['knn_ms'].mean():.2f}x"]
        for r in results
    ]  # fmt: skip
    return md_table(["crystals", "n", "knn (baseline)", "ALIGNN graph + line graph", "ALIGNN / knn"], rows)


def pymatgen_table(results: list[dict]) -> str:
    rows = []
    for r in results:
        theirs, ours = r["pymatgen_ms"].mean(), r["ours_on_sample_ms"].mean()
        n = len(r["pymatgen_ms"])
        rows.append([r["label"], n, f"{theirs:.2f}", f"{ours:.2f}", f"{theirs / ours:.1f}x"])
    headers = ["crystals", "n", "pymatgen neighbours only, ms", "ours, everything, ms", "pymatgen / ours"]
    return md_table(headers, rows)


def size_table(results: list[dict]) -> str:
    rows = []
    for r in results:
        n = r["crystals"]
        alignn, knn = sum(r["alignn_bytes"].values()), sum(r["knn_bytes"].values())
        rows.append([
            r["label"], n, f"{r['add_seconds']:.1f}", f"{n / r['add_seconds']:.0f}",
            f"{r['knn_edges'] / n:.0f}", f"{r['edges'] / n:.0f}", f"{r['pairs'] / n:.0f}",
            f"{knn / n / 1e3:.1f}", f"{alignn / n / 1e3:.1f}", f"{alignn / knn:.1f}x",
        ])  # fmt: skip
    headers = ["crystals", "n", "add_graphs s", "crystals/s", "knn edges", "ALIGNN edges", "line pairs",
               "knn KB", "ALIGNN KB", "ALIGNN / knn"]  # fmt: skip
    return md_table(headers, rows)


def array_table(results: list[dict]) -> str:
    rows = []
    for name in sorted(results[-1]["alignn_bytes"]):
        cells = [name]
        for r in results:
            count = r["pairs"] if name in ("line_index", "line_cos") else r["edges"]
            raw = f" ({count * RAW_BYTES[name] / r['crystals']:.0f})" if name in RAW_BYTES else ""
            cells.append(f"{r['alignn_bytes'][name] / r['crystals']:.0f}{raw}")
        rows.append(cells)
    return md_table(["array", *(r["label"] for r in results)], rows)


def render(results: list[dict], args: argparse.Namespace) -> str:
    return "\n".join([
        f"CPU: {cpu_model()} ({usable_cores()} usable cores); add_graphs with {args.workers} workers.",
        "", "Build cost per crystal, one process, ms (mean / p50 / p95 / max):", "", cost_table(results),
        "", f"pymatgen get_all_neighbors with ALIGNN's cutoff growth, first {args.pymatgen_sample} crystals:",
        "", pymatgen_table(results),
        "", "add_graphs end to end, and bytes on disk per crystal:", "", size_table(results),
        "", "ALIGNN bytes on disk per crystal by array (uncompressed in brackets):", "", array_table(results),
    ])  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=None, help="a built store to read shards from")
    parser.add_argument("--shards", type=int, default=3, help="how many of its first shards (default 3)")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (copies are made here)")
    parser.add_argument("--workers", type=int, default=usable_cores(), help="add_graphs processes")
    parser.add_argument("--pymatgen-sample", type=int, default=300, help="crystals for the pymatgen timing")
    parser.add_argument("--out-md", type=Path, default=None, help="also write the report to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results = [measure("sample", sample_store(args.work), args)]
    if args.store is not None:
        copy = first_shards(args.store, args.shards, args.work)
        results.append(measure(f"{args.store.name} first {args.shards} shards", copy, args))
    text = render(results, args)
    return publish(text, args.out_md)


if __name__ == "__main__":
    raise SystemExit(main())
