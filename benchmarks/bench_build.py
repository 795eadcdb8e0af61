"""Build throughput, storage and read-back of crystal_data against the CrysGNN/CGCNN reference recipe.

On ``--n`` real Materials Project crystals drawn at random (fixed ``--seed``), in one process, this
measures side by side:

1. The reference recipe (cgcnn ``data.py`` / CrysGNN), per crystal and per stage: pymatgen
   ``Structure.from_file``; ``get_all_neighbors(8.0, include_index=True)`` then per site
   ``sorted(..., key=distance)[:12]``; ``SpacegroupAnalyzer`` (symprec 0.01) with
   ``get_space_group_number()`` and ``get_crystal_system()``.
2. Ours on the same crystals, per stage: file read + ``parse_cif``, ``check_structure``,
   ``nearest_neighbor_graph``, ``analyze_symmetry`` (symprec 0.1); ``process_cif`` as a whole; and
   ``build_store(..., workers=1)`` end to end into a temporary store (shard and manifest writes
   included). The end-to-end speed-up is reference stage sum / ``build_store`` wall time.
3. Storage of that store: bytes per graph of the graph Zarr shards, the records Parquet and the
   whole store, against the mean bytes of CIF text per crystal.
4. Read-back: ``for g in store``, ``store.iter_shards()`` and ``store[i]`` at random indices with the
   shard cache warm (second pass on one ``Store``; with the default ``cache_shards=2`` and, for a store
   of more shards, with all of them cached) and cold (a fresh ``Store`` per access).
5. Agreement: the sorted top-12 neighbour distances of every atom must equal the reference's within
   1e-4 Å (ours are float32); space-group numbers are compared with the reference's (symprec 0.01)
   at our default symprec 0.1, and at 0.01.

Every timing uses ``time.perf_counter``; the CIF files are read once before timing so both pipelines
see a warm page cache, and both pipelines are warmed up on one crystal first (imports, tables).

    taskset -c 0 .venv/bin/python benchmarks/bench_build.py --n 2000 --data /tmp/mp/mp-formation-energy

``--data`` takes the tarball ``mp-formation-energy-33k.tar.gz`` (extracted once into ``--cache``) or
an extracted folder; ``--read-store`` adds the storage and read-back measurements of an existing
store (e.g. the full 33K build). The report names the git commit and a hash of the ``crystal_data``
sources it ran.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from common import cpu_model, md_table, publish, resolve_data, usable_cores

import crystal_data
from crystal_data.build import BuildSettings, build_store
from crystal_data.errors import RejectedInput
from crystal_data.graphs.config import GraphConfig
from crystal_data.graphs.neighbors import CrystalGraph, nearest_neighbor_graph
from crystal_data.process import process_cif
from crystal_data.readers.cif import ParsedCif, parse_cif
from crystal_data.readers.cif_folder import CifInput
from crystal_data.record import check_structure
from crystal_data.store import CrystalGraphSample, Store, verify_store
from crystal_data.symmetry import SymmetryConfig, analyze_symmetry

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "mp-formation-energy-33k.tar.gz"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "crystal_data-bench"
LABEL, LABEL_UNIT = "formation_energy_per_atom", "eV/atom"
SOURCE, SOURCE_VERSION = "mp", "cgcnn-2018"
CUTOFF, MAX_NEIGHBORS, REFERENCE_SYMPREC = 8.0, 12, 0.01
DISTANCE_TOLERANCE = 1e-4
RANDOM_READS, COLD_READS = 2000, 100
LIBRARIES = ("numpy", "pymatgen", "spglib", "gemmi", "pyarrow", "zarr")

if TYPE_CHECKING:
    from pymatgen.core import Structure

T = TypeVar("T")


@dataclass(frozen=True)
class Crystal:
    source_id: str
    path: Path
    label: float | None


@dataclass
class StageTimes:
    """Seconds per stage, summed over crystals, in insertion order."""

    seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, stage: str, fn: Callable[..., T], *args: object) -> T:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


@dataclass(frozen=True)
class Outcome:
    """One crystal through one pipeline: per-atom sorted top-k distances and space group."""

    distances: list[np.ndarray] | None
    spacegroup: int | None
    error: str | None = None


# --------------------------------------------------------------------------------------------- data


def load_sample(folder: Path, n: int, seed: int) -> list[Crystal]:
    """``n`` crystals drawn without replacement, kept in ``id_prop.csv`` (or file name) order."""
    everything = _all_crystals(folder)
    if n > len(everything):
        sys.exit(f"error: --n {n} but {folder} holds only {len(everything)} crystals")
    chosen = np.sort(np.random.default_rng(seed).choice(len(everything), size=n, replace=False))
    return [everything[int(k)] for k in chosen]


def _all_crystals(folder: Path) -> list[Crystal]:
    id_prop = folder / "id_prop.csv"
    if not id_prop.exists():
        return [Crystal(p.stem, p, None) for p in sorted(folder.glob("*.cif"))]
    with open(id_prop, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    crystals = [Crystal(row[0], folder / f"{row[0]}.cif", float(row[1])) for row in rows]
    return [c for c in crystals if c.path.exists()]


# ---------------------------------------------------------------------------------------- pipelines


def reference_crystal(crystal: Crystal, times: StageTimes) -> Outcome:
    """The CGCNN/CrysGNN recipe, as in cgcnn ``data.py`` plus CrysGNN's space-group labels."""
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        structure = times.timed("parse", Structure.from_file, str(crystal.path))
        neighbors = times.timed("neighbours", _reference_neighbors, structure)
        spacegroup, _ = times.timed("symmetry", _reference_symmetry, structure, SpacegroupAnalyzer)
    except Exception as exc:  # a crash of the reference is reported, not fatal
        return Outcome(None, None, f"{type(exc).__name__}: {exc}")
    return Outcome([np.asarray(distances) for _, distances in neighbors], spacegroup)


def _reference_neighbors(structure: Structure) -> list[tuple[list[int], list[float]]]:
    all_nbrs = structure.get_all_neighbors(CUTOFF, include_index=True)
    all_nbrs = [sorted(nbrs, key=lambda x: x[1]) for nbrs in all_nbrs]  # cgcnn: key=distance
    return [([x[2] for x in nbr[:MAX_NEIGHBORS]], [x[1] for x in nbr[:MAX_NEIGHBORS]]) for nbr in all_nbrs]


def _reference_symmetry(structure: Structure, analyzer_class: type) -> tuple[int, str]:
    analyzer = analyzer_class(structure, symprec=REFERENCE_SYMPREC)
    return analyzer.get_space_group_number(), analyzer.get_crystal_system()


def ours_crystal(
    crystal: Crystal, times: StageTimes, graph: GraphConfig, symmetry: SymmetryConfig
) -> Outcome:
    """Our stages called one by one, as ``process_cif`` does."""
    try:
        parsed = times.timed("parse", _read_and_parse, crystal.path)
        times.timed("checks", check_structure, parsed.lattice, parsed.atomic_numbers, parsed.frac_coords)
        graph_ = times.timed("neighbours", nearest_neighbor_graph, parsed.lattice, parsed.frac_coords, graph)
        result = times.timed(
            "symmetry", analyze_symmetry, parsed.lattice, parsed.frac_coords, parsed.atomic_numbers, symmetry
        )
    except RejectedInput as exc:
        return Outcome(None, None, f"{exc.code}: {exc.reason}")
    return Outcome(per_atom_distances(graph_, len(parsed.atomic_numbers)), result.spacegroup_number)


def _read_and_parse(path: Path) -> ParsedCif:
    return parse_cif(path.read_bytes())


def per_atom_distances(graph: CrystalGraph, num_atoms: int) -> list[np.ndarray]:
    """Each atom's incoming edge distances (edges are grouped by target), sorted."""
    counts = np.bincount(graph.edge_index[1], minlength=num_atoms)
    order = np.argsort(graph.edge_index[1], kind="stable")
    groups = np.split(graph.edge_distance[order], np.cumsum(counts)[:-1])
    return [np.sort(group) for group in groups]


def ours_spacegroups(crystals: Sequence[Crystal], symprec: float) -> list[int | None]:
    """Our space-group numbers at another symprec (untimed)."""
    numbers: list[int | None] = []
    for crystal in crystals:
        try:
            parsed = _read_and_parse(crystal.path)
        except RejectedInput:
            numbers.append(None)
            continue
        config = SymmetryConfig(symprec=symprec)
        numbers.append(
            analyze_symmetry(
                parsed.lattice, parsed.frac_coords, parsed.atomic_numbers, config
            ).spacegroup_number
        )
    return numbers


def run_pipeline(
    crystals: Sequence[Crystal], one: Callable[[Crystal, StageTimes], Outcome]
) -> tuple[StageTimes, np.ndarray, list[Outcome]]:
    """Warm up on the first crystal (untimed), then run every crystal; per-crystal totals kept."""
    one(crystals[0], StageTimes())
    times, per_crystal, outcomes = StageTimes(), [], []
    for crystal in crystals:
        before = times.total
        outcomes.append(one(crystal, times))
        per_crystal.append(times.total - before)
    return times, np.asarray(per_crystal), outcomes


def time_process_cif(crystals: Sequence[Crystal]) -> float:
    """Seconds for ``process_cif`` over all crystals (after one untimed warm-up call)."""
    items = [CifInput(str(c.path), c.source_id, {LABEL: c.label}) for c in crystals]
    settings = {
        "source": SOURCE,
        "source_version": SOURCE_VERSION,
        "graph": GraphConfig(),
        "symmetry": SymmetryConfig(),
    }
    process_cif(items[0], **settings)
    start = time.perf_counter()
    for item in items:
        process_cif(item, **settings)
    return time.perf_counter() - start


def time_build(crystals: Sequence[Crystal], out: Path) -> float:
    """Wall seconds of ``build_store(..., workers=1)``."""
    settings = BuildSettings(source=SOURCE, source_version=SOURCE_VERSION, label_units={LABEL: LABEL_UNIT})
    inputs = [CifInput(str(c.path), c.source_id, {LABEL: c.label}) for c in crystals]
    start = time.perf_counter()
    build_store(inputs, out, settings, workers=1, progress=False)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------------ compare


@dataclass(frozen=True)
class Agreement:
    compared: int
    mismatched: list[str]
    max_difference: float


def compare_neighbors(
    crystals: Sequence[Crystal], ref: Sequence[Outcome], ours: Sequence[Outcome]
) -> Agreement:
    """Per atom, the sorted top-12 distances must match in count and within the tolerance."""
    mismatched, compared, worst = [], 0, 0.0
    for crystal, a, b in zip(crystals, ref, ours):
        if a.distances is None or b.distances is None:
            continue
        compared += 1
        same = len(a.distances) == len(b.distances)
        for x, y in zip(a.distances, b.distances):
            if len(x) != len(y):
                same = False
            elif len(x):
                worst = max(worst, float(np.abs(x - y).max()))
                same = same and bool(np.abs(x - y).max() <= DISTANCE_TOLERANCE)
        if not same:
            mismatched.append(crystal.source_id)
    return Agreement(compared, mismatched, worst)


def count_equal(a: Sequence[int | None], b: Sequence[int | None]) -> tuple[int, int]:
    """(equal, compared) over the pairs where both are known."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    return sum(x == y for x, y in pairs), len(pairs)


# -------------------------------------------------------------------------------- storage, read-back


def store_sizes(store: Path) -> dict[str, tuple[int, int]]:
    """(apparent bytes, allocated bytes) of the graph shards, records, the rest, and the whole store."""
    parts = {"graph Zarr shards (graphs/)": "graphs", "records Parquet (records/)": "records"}
    sizes = {label: _tree_size(store / sub) for label, sub in parts.items()}
    whole = _tree_size(store)
    sizes["rejected.parquet + manifest.json"] = (
        whole[0] - sum(s[0] for s in sizes.values()),
        whole[1] - sum(s[1] for s in sizes.values()),
    )
    sizes["whole store"] = whole
    return sizes


def _tree_size(root: Path) -> tuple[int, int]:
    stats = [p.stat() for p in root.rglob("*") if p.is_file()]
    return sum(s.st_size for s in stats), sum(s.st_blocks * 512 for s in stats)


def raw_graph_bytes(store: Store) -> int:
    """Uncompressed bytes of the graph arrays (what the Zarr shards compress)."""
    names = ("atomic_numbers", "node_ptr", "edge_ptr", "edge_index", "edge_distance", "edge_image")
    return sum(getattr(shard, name).nbytes for shard in store.iter_shards() for name in names)


@dataclass(frozen=True)
class StoreMeasurement:
    label: str
    storage_rows: list[list[str]]
    reads: list[tuple[str, int, float]]


def measure_store(path: Path, name: str, cif_bytes: float, seed: int) -> StoreMeasurement:
    """Storage per graph (against ``cif_bytes`` of CIF text per crystal) and read-back rates."""
    store = Store(path)
    records, shards = len(store), store.manifest["counts"]["shards"]
    rows = [_size_row(label, *sizes, records, cif_bytes) for label, sizes in store_sizes(path).items()]
    raw = raw_graph_bytes(store)
    rows.append(_size_row("graph arrays, uncompressed in memory", raw, None, records, cif_bytes))
    rows.append(["CIF text, mean per crystal", "—", f"{cif_bytes:,.0f}", "—", "1.00x"])
    label = f"{name} ({records:,} graphs, {shards} shard{'s' if shards > 1 else ''})"
    return StoreMeasurement(label, rows, read_back(path, seed))


def _size_row(label: str, total: int, allocated: int | None, records: int, cif_bytes: float) -> list[str]:
    per_graph = total / records
    allocated_per_graph = "—" if allocated is None else f"{allocated / records:,.0f}"
    return [label, f"{total:,}", f"{per_graph:,.0f}", allocated_per_graph, f"{per_graph / cif_bytes:.2f}x"]


def read_back(path: Path, seed: int) -> list[tuple[str, int, float]]:
    """(access pattern, graphs read, seconds) for each access pattern. "Warm" random access times a
    second pass over the same indices on the same ``Store``; it is warm only if the shards fit its
    cache (``cache_shards``, default 2), so a store of more shards is also read with all cached."""
    rng = np.random.default_rng(seed)
    Store(path).shard(0)  # untimed: first-use costs of the readers and codecs
    size, shards = len(Store(path)), len(Store(path).manifest["shards"])
    random_indices = rng.integers(0, size, size=RANDOM_READS)
    cold_indices = rng.integers(0, size, size=min(COLD_READS, size))
    caches = [2] if shards <= 2 else [2, shards]
    results = [
        ("`for g in store` (full iteration)", *_timed_count(lambda: _touch_all(Store(path)))),
        ("`store.iter_shards()` (whole shards)", *_timed_count(lambda: _count_shards(Store(path)))),
    ]
    for cache in caches:
        store = Store(path, cache_shards=cache)
        _read_at(store, random_indices)  # first pass fills the shard cache
        pattern = f"`store[i]` random, warm (second pass, `cache_shards={cache}`)"
        results.append((pattern, *_timed_count(lambda store=store: _read_at(store, random_indices))))
    results.append(
        (
            "`store[i]` random, cold (fresh `Store` each)",
            *_timed_count(lambda: _touch_all(Store(path)[int(i)] for i in cold_indices)),
        )
    )
    return results


def _read_at(store: Store, indices: np.ndarray) -> int:
    return _touch_all(store[int(i)] for i in indices)


def _touch_all(samples: Iterable[CrystalGraphSample]) -> int:
    count = 0
    for sample in samples:
        _ = sample.num_edges
        count += 1
    return count


def _count_shards(store: Store) -> int:
    return sum(len(shard) for shard in store.iter_shards())


def _timed_count(fn: Callable[[], int]) -> tuple[int, float]:
    start = time.perf_counter()
    count = fn()
    return count, time.perf_counter() - start


# ----------------------------------------------------------------------------------------- markdown


def ms(seconds: float, n: int) -> str:
    return f"{1000 * seconds / n:.3f}"


def rate(seconds: float, n: int) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "inf"


def speedup(reference: float, ours: float) -> str:
    return f"{reference / ours:.1f}x" if ours > 0 else "n/a"


def environment(code: str) -> str:
    cpu = cpu_model()
    cores = usable_cores()
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in LIBRARIES)
    return (
        f"- date {dt.date.today().isoformat()}; CPU {cpu}; {cores} core(s) usable by this process\n"
        f"- Python {platform.python_version()}; crystal_data {crystal_data.__version__}; {versions}\n"
        f"- code: {code}"
    )


def code_version() -> str:
    """The git commit, the package files that differ from it, and a hash of the package sources as
    imported (the package may be edited while a benchmark runs)."""
    package = Path(crystal_data.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    sources = f"crystal_data sources sha256 {digest.hexdigest()[:12]}"
    try:
        git = ["git", "-C", str(REPO_ROOT)]
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        status = subprocess.run(
            [*git, "status", "--porcelain", "--", "crystal_data"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return f"not a git checkout; {sources}"
    changed = [line[3:] for line in status.stdout.splitlines()]
    dirty = (
        f"uncommitted changes in {', '.join(changed)}"
        if changed
        else "no uncommitted changes in crystal_data"
    )
    return f"git {head.stdout.strip()}, {dirty}; {sources}"


def throughput_section(n: int, ref: StageTimes, ours: StageTimes, process_s: float, build_s: float) -> str:
    headers = [
        "stage",
        "reference ms/crystal",
        "reference crystals/s",
        "ours ms/crystal",
        "ours crystals/s",
        "speed-up (reference/ours)",
    ]
    names = {
        "parse": "parse (`Structure.from_file` / read + `parse_cif`)",
        "checks": "checks (— / `check_structure`)",
        "neighbours": "top-12 neighbours (`get_all_neighbors` + sort / `nearest_neighbor_graph`)",
        "symmetry": "symmetry (`SpacegroupAnalyzer` 0.01 / `analyze_symmetry` 0.1)",
    }
    rows = []
    for key, label in names.items():
        r, o = ref.seconds.get(key), ours.seconds.get(key, 0.0)
        rows.append(
            [
                label,
                ms(r, n) if r else "—",
                rate(r, n) if r else "—",
                ms(o, n),
                rate(o, n),
                speedup(r, o) if r else "—",
            ]
        )
    rows.append(
        [
            "**sum of stages**",
            ms(ref.total, n),
            rate(ref.total, n),
            ms(ours.total, n),
            rate(ours.total, n),
            speedup(ref.total, ours.total),
        ]
    )
    rows.append(
        [
            "`process_cif` (stages + record, formula)",
            "—",
            "—",
            ms(process_s, n),
            rate(process_s, n),
            speedup(ref.total, process_s),
        ]
    )
    rows.append(
        [
            "**end to end** (reference stage sum / `build_store` workers=1, writes included)",
            ms(ref.total, n),
            rate(ref.total, n),
            ms(build_s, n),
            rate(build_s, n),
            f"**{speedup(ref.total, build_s)}**",
        ]
    )
    return md_table(headers, rows)


def distribution_section(ref: np.ndarray, ours: np.ndarray) -> str:
    quantiles = (0.5, 0.9, 0.99, 1.0)
    headers = ["per crystal, stage sum (ms)", "median", "p90", "p99", "max"]
    rows = [
        [name, *(f"{1000 * np.quantile(values, q):.2f}" for q in quantiles)]
        for name, values in (("reference", ref), ("ours", ours))
    ]
    return md_table(headers, rows)


def storage_section(stores: Sequence[StoreMeasurement]) -> str:
    headers = ["store", "part", "bytes", "bytes/graph", "allocated bytes/graph", "vs mean CIF text"]
    return md_table(headers, [[m.label, *row] for m in stores for row in m.storage_rows])


def read_back_section(stores: Sequence[StoreMeasurement]) -> str:
    headers = ["store", "access", "graphs", "seconds", "graphs/s", "µs/graph"]
    rows = [
        [m.label, mode, f"{count:,}", f"{seconds:.3f}", rate(seconds, count), f"{1e6 * seconds / count:,.1f}"]
        for m in stores
        for mode, count, seconds in m.reads
    ]
    return md_table(headers, rows)


def agreement_section(
    neighbors: Agreement,
    sg_default: tuple[int, int],
    sg_same: tuple[int, int],
    failures: dict[str, list[str]],
) -> str:
    lines = [
        f"- top-{MAX_NEIGHBORS} neighbour distances (sorted per atom, tolerance {DISTANCE_TOLERANCE} Å): "
        f"{neighbors.compared - len(neighbors.mismatched)} of {neighbors.compared} crystals equal; "
        f"largest difference {neighbors.max_difference:.2e} Å"
        + (f"; mismatched: {', '.join(neighbors.mismatched[:20])}" if neighbors.mismatched else ""),
        f"- space-group number, reference (symprec {REFERENCE_SYMPREC}) vs ours (symprec "
        f"{SymmetryConfig().symprec}): {sg_default[0]} of {sg_default[1]} agree",
        f"- space-group number, reference vs ours both at symprec {REFERENCE_SYMPREC}: "
        f"{sg_same[0]} of {sg_same[1]} agree",
    ]
    for name, items in failures.items():
        lines.append(
            f"- {name} failed or rejected: {len(items)}" + (f" ({'; '.join(items[:10])})" if items else "")
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="crystals to sample (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="tarball or folder of CIFs")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the tarball is extracted")
    parser.add_argument("--out-md", type=Path, default=None, help="also write the report to this file")
    parser.add_argument("--read-store", type=Path, default=None, help="also measure read-back on this store")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    return args


@dataclass(frozen=True)
class BuildResult:
    seconds: float
    first_call_seconds: float
    """The one-crystal warm-up build before the timed one (first use of the Parquet and Zarr writers)."""
    records: int
    rejected: list[str]
    problems: list[str]


def measure_build(crystals: Sequence[Crystal], out: Path) -> BuildResult:
    """Warm up with a one-crystal build (as both pipelines were warmed up), then time the build."""
    first_call = time_build(crystals[:1], out.with_name(out.name + "-warm-up"))
    seconds = time_build(crystals, out)
    store = Store(out)
    rejected = [f"{r['source_id']}: {r['reason_code']}" for r in store.rejected.iter_rows(named=True)]
    return BuildResult(seconds, first_call, len(store), rejected, verify_store(out))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    code = code_version()  # now: the sources may change while the benchmark runs
    warnings.simplefilter("ignore")  # pymatgen's CIF warnings would flood the report
    folder = resolve_data(args.data, args.cache)
    crystals = load_sample(folder, args.n, args.seed)
    n = len(crystals)
    cif_bytes = float(np.mean([len(c.path.read_bytes()) for c in crystals]))  # also warms the page cache

    graph, symmetry = GraphConfig(), SymmetryConfig()
    print(f"reference recipe on {n} crystals ...", file=sys.stderr)
    ref_times, ref_each, ref_out = run_pipeline(crystals, reference_crystal)
    print("our stages ...", file=sys.stderr)
    ours_times, ours_each, ours_out = run_pipeline(crystals, lambda c, t: ours_crystal(c, t, graph, symmetry))
    process_s = time_process_cif(crystals)
    sg_same = count_equal([o.spacegroup for o in ref_out], ours_spacegroups(crystals, REFERENCE_SYMPREC))

    print("build_store, storage, read-back ...", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        build = measure_build(crystals, Path(tmp) / "store")
        stores = [measure_store(Path(tmp) / "store", "sample store", cif_bytes, args.seed)]
    if args.read_store is not None:
        all_cif_bytes = float(np.mean([c.path.stat().st_size for c in _all_crystals(folder)]))
        stores.append(measure_store(args.read_store, f"`{args.read_store}`", all_cif_bytes, args.seed))

    failures = {
        "reference": [f"{c.source_id}: {o.error}" for c, o in zip(crystals, ref_out) if o.error],
        "ours (stages)": [f"{c.source_id}: {o.error}" for c, o in zip(crystals, ours_out) if o.error],
        "ours (`build_store`)": build.rejected,
    }
    report = "\n\n".join(
        [
            f"# crystal_data build benchmark: {n} real crystals (seed {args.seed})",
            environment(code) + f"\n- data: `{folder}`; single process",
            "## Throughput, reference recipe vs ours",
            throughput_section(n, ref_times, ours_times, process_s, build.seconds),
            distribution_section(ref_each, ours_each),
            f"`build_store`: {build.records:,} records from {n:,} inputs in {build.seconds:.2f} s; verify: "
            + ("OK" if not build.problems else "; ".join(build.problems))
            + f". Not included: the first `build_store` call of the process (one crystal, untimed "
            f"warm-up) took {build.first_call_seconds:.2f} s.",
            "## Storage",
            storage_section(stores),
            "## Read-back",
            read_back_section(stores),
            "## Agreement with the reference",
            agreement_section(
                compare_neighbors(crystals, ref_out, ours_out),
                count_equal([o.spacegroup for o in ref_out], [o.spacegroup for o in ours_out]),
                sg_same,
                failures,
            ),
        ]
    )
    return publish(report, args.out_md)


if __name__ == "__main__":
    sys.exit(main())
