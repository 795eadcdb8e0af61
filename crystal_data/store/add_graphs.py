"""Add a second featurizer's graphs (ALIGNN atom and line graphs) to a finished store.

Each shard's graphs are built from its records (lattice, fractional coordinates) and committed with
one rename to ``graphs/<hash>/part-XXXXX.zarr``; a shard already there is kept, so a killed run
resumes where it stopped. Once every shard is there the manifest gains the config in its ``graphs``
section and the files' checksums, in one atomic write. Work files live in ``STORE/.graphs/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crystal_data.graphs.alignn import AlignnGraph, alignn_graph
from crystal_data.graphs.config import AlignnGraphConfig
from crystal_data.parallel import parallel_map
from crystal_data.progress import progress_bar
from crystal_data.store import layout
from crystal_data.store.atomic import atomic_write, remove
from crystal_data.store.manifest import update_manifest
from crystal_data.store.shard_writer import write_graph_group

WORK_DIR = ".graphs"
CHUNK_SIZE = 32
"""Crystals per task sent to a worker process."""
_RECORD_COLUMNS = ["uid", "nsites", "lattice", "atomic_numbers", "frac_coords"]


@dataclass(frozen=True)
class AddGraphsReport:
    store: Path
    graphs: str
    """The config hash: ``crystal_data.open(store, graphs=...)``."""
    shards: int
    shards_done_before: int
    seconds: float


@dataclass(frozen=True)
class _Chunk:
    shard: int
    start: int
    uids: list[str]
    lattices: np.ndarray
    frac_coords: list[np.ndarray]


def add_graphs(
    store_path: str | Path, config: AlignnGraphConfig, *, workers: int = 1, progress: bool = True
) -> AddGraphsReport:
    """Build ``config``'s graphs for every record of the store at ``store_path``; a no-op when the
    manifest already lists them. Raises ``RuntimeError`` naming the uid of a crystal whose graph
    cannot be built (no record is ever left without a graph)."""
    start = time.perf_counter()
    store = Path(store_path)
    manifest = json.loads((store / layout.MANIFEST).read_text())
    if not isinstance(config, AlignnGraphConfig):
        raise TypeError(f"only ALIGNN graphs can be added to a built store, not {config!r}")
    if "release" in manifest:
        raise ValueError(f"{store} is a release, which never changes: add graphs to its store, then release")
    shards = manifest["shards"]
    if config.hash in manifest["graphs"]:
        return AddGraphsReport(store, config.hash, len(shards), len(shards), time.perf_counter() - start)
    work = store / WORK_DIR
    remove(work / "tmp")  # leftovers of a killed run; nothing is writing yet
    pending = [k for k in range(len(shards)) if not layout.graphs_path(store, config.hash, k).exists()]
    total = sum(shards[k]["records"] for k in pending)
    with progress_bar(progress, total, "crystals") as advance:
        for k, records, graphs in _built_shards(store, pending, config, workers, advance):
            _commit(store, k, records, graphs, config)
    folder = store / layout.GRAPHS_DIR / config.hash
    changed = sorted(p.relative_to(store).as_posix() for p in folder.rglob("*") if p.is_file())
    update_manifest(store, {"graphs": {**manifest["graphs"], config.hash: config.to_dict()}}, changed, work)
    remove(work)
    return AddGraphsReport(
        store, config.hash, len(shards), len(shards) - len(pending), time.perf_counter() - start
    )


def _built_shards(
    store: Path, pending: list[int], config: AlignnGraphConfig, workers: int, advance
) -> Iterator[tuple[int, pa.Table, list[AlignnGraph]]]:
    """(shard, its records, their graphs in record order) of every pending shard as it completes."""
    tables: dict[int, pa.Table] = {}
    expected: dict[int, int] = {}
    parts: dict[int, dict[int, list[AlignnGraph]]] = {}

    def chunks() -> Iterator[_Chunk]:
        for k in pending:
            table = pq.read_table(layout.records_path(store, k), columns=_RECORD_COLUMNS)
            tables[k] = table
            expected[k] = max(1, -(-table.num_rows // CHUNK_SIZE))
            uids = table.column("uid").to_pylist()
            sizes = np.asarray(table.column("nsites"), dtype=np.int64)
            lattices = _flat(table, "lattice").reshape(-1, 3, 3)
            frac = np.split(_flat(table, "frac_coords").reshape(-1, 3), np.cumsum(sizes)[:-1])
            for first in range(0, max(1, len(uids)), CHUNK_SIZE):
                last = first + CHUNK_SIZE
                yield _Chunk(k, first, uids[first:last], lattices[first:last], frac[first:last])

    for chunk, graphs in parallel_map(partial(_build_chunk, config=config), chunks(), workers=workers):
        advance(len(graphs))
        done = parts.setdefault(chunk.shard, {})
        done[chunk.start] = graphs
        if len(done) == expected[chunk.shard]:
            del parts[chunk.shard]
            yield chunk.shard, tables.pop(chunk.shard), [g for first in sorted(done) for g in done[first]]


def _commit(
    store: Path, k: int, records: pa.Table, graphs: list[AlignnGraph], config: AlignnGraphConfig
) -> None:
    arrays, uids = _shard_arrays(records, graphs), records.column("uid").to_pylist()
    atomic_write(
        layout.graphs_path(store, config.hash, k),
        lambda path: write_graph_group(path, arrays, config.to_dict(), uids),
        store / WORK_DIR / "tmp",
    )


def _build_chunk(chunk: _Chunk, config: AlignnGraphConfig) -> list[AlignnGraph]:
    graphs = []
    for uid, lattice, frac in zip(chunk.uids, chunk.lattices, chunk.frac_coords):
        try:
            graphs.append(alignn_graph(lattice, frac, config))
        except Exception as exc:
            raise RuntimeError(f"{uid}: no ALIGNN graph ({type(exc).__name__}: {exc})") from exc
    return graphs


def _shard_arrays(records: pa.Table, graphs: list[AlignnGraph]) -> dict[str, np.ndarray]:
    """The shard's Zarr arrays: ragged per-crystal arrays concatenated, with offsets."""
    sizes = np.asarray(records.column("nsites"), dtype=np.int64)

    def ptr(counts) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))]).astype(np.int64)

    def cat(name: str, empty: tuple[int, ...], dtype, axis: int = 0) -> np.ndarray:
        parts = [getattr(g, name) for g in graphs]
        return np.concatenate(parts, axis=axis).astype(dtype, copy=False) if parts else np.zeros(empty, dtype)

    return {
        "atomic_numbers": _flat(records, "atomic_numbers").astype(np.uint8),
        "node_ptr": ptr(sizes),
        "edge_ptr": ptr([g.num_edges for g in graphs]),
        "edge_index": cat("edge_index", (2, 0), np.int32, axis=1),
        "edge_distance": cat("edge_distance", (0,), np.float32),
        "edge_image": cat("edge_image", (0, 3), np.int8),
        "edge_vector": cat("edge_vector", (0, 3), np.float32),
        "line_ptr": ptr([g.num_pairs for g in graphs]),
        "line_index": cat("line_index", (2, 0), np.int32, axis=1),
        "line_cos": cat("line_cos", (0,), np.float32),
    }


def _flat(table: pa.Table, column: str) -> np.ndarray:
    """A nested list column's innermost values as one flat numpy array."""
    values = table.column(column).combine_chunks()
    while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type):
        values = values.flatten()
    return values.to_numpy(zero_copy_only=False)
