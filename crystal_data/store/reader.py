"""Read a store: records as Polars, graphs as numpy, shard by shard."""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crystal_data.schema import SCHEMA_VERSION, label_units_of
from crystal_data.store import layout
from crystal_data.store.manifest import STORE_FORMAT


@dataclass(frozen=True, eq=False)
class CrystalGraphSample:
    """One crystal of a store: its multigraph (see :mod:`crystal_data.graphs.neighbors` for the
    edge convention), its structure and its labels."""

    uid: str
    atomic_numbers: np.ndarray
    edge_index: np.ndarray
    edge_distance: np.ndarray
    edge_image: np.ndarray
    lattice: np.ndarray
    frac_coords: np.ndarray
    spacegroup_number: int | None
    crystal_system: str | None
    labels: dict[str, float | None] = field(default_factory=dict)
    edge_vector: np.ndarray | None = None
    """(E, 3) float32 displacement source -> target (ALIGNN graphs only; None otherwise)."""
    line_index: np.ndarray | None = None
    """(2, T) int32 line-graph pairs of this crystal's edge numbers (ALIGNN graphs only)."""
    line_cos: np.ndarray | None = None
    """(T,) float32 cosine of each pair's bond angle (ALIGNN graphs only)."""

    @property
    def num_nodes(self) -> int:
        return len(self.atomic_numbers)

    @property
    def num_edges(self) -> int:
        return len(self.edge_distance)


@dataclass(frozen=True, eq=False)
class GraphShard:
    """A whole shard in memory: flat arrays plus offsets, and the shard's records."""

    records: pa.Table
    atomic_numbers: np.ndarray
    node_ptr: np.ndarray
    edge_ptr: np.ndarray
    edge_index: np.ndarray
    edge_distance: np.ndarray
    edge_image: np.ndarray
    edge_vector: np.ndarray | None = None
    """Line-graph featurizers (ALIGNN) only, like the three below; ``None`` for the knn graphs."""
    line_ptr: np.ndarray | None = None
    line_index: np.ndarray | None = None
    line_cos: np.ndarray | None = None

    def __len__(self) -> int:
        return self.records.num_rows

    @cached_property
    def lattices(self) -> np.ndarray:
        """(G, 3, 3) float64."""
        flat = self.records.column("lattice").combine_chunks().flatten().flatten()
        return np.asarray(flat, dtype=np.float64).reshape(-1, 3, 3)

    @cached_property
    def frac_coords(self) -> np.ndarray:
        """(N, 3) float64, rows aligned with ``atomic_numbers``."""
        flat = self.records.column("frac_coords").combine_chunks().flatten().flatten()
        return np.asarray(flat, dtype=np.float64).reshape(-1, 3)

    @cached_property
    def columns(self) -> dict[str, list]:
        """Scalar record columns as Python lists: uid, symmetry and labels."""
        names = ["uid", "spacegroup_number", "crystal_system", *label_units_of(self.records.schema)]
        return {name: self.records.column(name).to_pylist() for name in names}


class Store:
    """A store directory opened for reading (``crystal_data.open(path)``)."""

    def __init__(self, path: str | Path, graphs: str | None = None, cache_shards: int = 2):
        self.path = Path(path)
        manifest_file = self.path / layout.MANIFEST
        if not manifest_file.exists():
            hint = (
                " (an unfinished build: run the same build again to finish it)"
                if (self.path / layout.BUILD_DIR).exists()
                else ""
            )
            raise FileNotFoundError(f"{self.path}: no {layout.MANIFEST}; not a finished store{hint}")
        self.manifest = json.loads(manifest_file.read_text())
        if self.manifest.get("format") != STORE_FORMAT:
            raise ValueError(f"{manifest_file}: not a crystal_data store manifest")
        if self.manifest["schema_version"] > SCHEMA_VERSION:
            raise ValueError(
                f"{self.path}: schema version {self.manifest['schema_version']} is newer than this "
                f"crystal_data ({SCHEMA_VERSION}); upgrade the package"
            )
        self.graphs_hash = graphs or self.manifest["default_graphs"]
        if self.graphs_hash not in self.manifest["graphs"]:
            raise KeyError(
                f"{self.path}: no graphs {self.graphs_hash!r}; has {sorted(self.manifest['graphs'])}"
            )
        self._shards = self.manifest["shards"]
        self._starts = np.cumsum([0] + [s["records"] for s in self._shards]).tolist()
        self._cache: OrderedDict[int, GraphShard] = OrderedDict()
        self._cache_size = cache_shards

    def __repr__(self) -> str:
        counts = self.manifest["counts"]
        return (
            f"Store({str(self.path)!r}, records={counts['records']}, rejected={counts['rejected']}, "
            f"shards={counts['shards']}, graphs={self.graphs_hash!r})"
        )

    def __len__(self) -> int:
        return self._starts[-1]

    @property
    def graph_config(self) -> dict:
        return self.manifest["graphs"][self.graphs_hash]

    @property
    def label_units(self) -> dict[str, str]:
        return dict(self.manifest["labels"])

    @cached_property
    def records(self):
        """All records as a Polars DataFrame (row i is ``store[i]``). After deduplication it has a
        ``canonical`` column; after a leakage check a ``leaked`` column."""
        import polars as pl

        records = pl.from_arrow(self.records_table())
        if self.duplicates is not None:
            records = records.with_columns(
                canonical=~pl.col("uid").is_in(self.duplicates["member_uid"].implode())
            )
        if self.leakage is not None:
            records = records.with_columns(leaked=pl.col("uid").is_in(self.leakage["uid"].implode()))
        return records

    @cached_property
    def duplicates(self):
        """The duplicate map (Polars DataFrame: canonical_uid, member_uid, source, source_id, method,
        rms_distance), or ``None`` before ``crystal-data dedup``."""
        return self._optional_table(layout.DUPLICATES)

    @cached_property
    def leakage(self):
        """Records matching a crystal of another store (Polars DataFrame), or ``None`` if not checked."""
        return self._optional_table(layout.LEAKAGE)

    def _optional_table(self, name: str):
        import polars as pl

        return pl.read_parquet(self.path / name) if (self.path / name).exists() else None

    def records_table(self, columns: list[str] | None = None) -> pa.Table:
        tables = [pq.read_table(self._records_file(k), columns=columns) for k in range(len(self._shards))]
        return pa.concat_tables(tables)

    @cached_property
    def rejected(self):
        """Every input that did not become a record, with the reason (Polars DataFrame)."""
        import polars as pl

        return pl.read_parquet(self.path / layout.REJECTED)

    def __getitem__(self, index: int) -> CrystalGraphSample:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a store of {len(self)} crystals")
        k = bisect.bisect_right(self._starts, index) - 1
        return self._sample(self.shard(k), index - self._starts[k])

    def __iter__(self) -> Iterator[CrystalGraphSample]:
        for k in range(len(self._shards)):
            shard = self.shard(k, cache=False)
            for row in range(len(shard)):
                yield self._sample(shard, row)

    def iter_shards(self) -> Iterator[GraphShard]:
        """Whole shards, in order: the fast path for loaders."""
        for k in range(len(self._shards)):
            yield self.shard(k, cache=False)

    def shard(self, k: int, cache: bool = True) -> GraphShard:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        shard = self._load_shard(k)
        if cache:
            self._cache[k] = shard
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return shard

    def _records_file(self, k: int) -> Path:
        return self.path / layout.RECORDS_DIR / f"{self._shards[k]['name']}.parquet"

    def _load_shard(self, k: int) -> GraphShard:
        import zarr

        group = zarr.open_group(
            self.path / layout.GRAPHS_DIR / self.graphs_hash / f"{self._shards[k]['name']}.zarr", mode="r"
        )
        names = layout.GRAPH_ARRAYS + layout.EXTRA_GRAPH_ARRAYS.get(self.graph_config.get("kind"), ())
        arrays = {name: group[name][...] for name in names}
        return GraphShard(records=pq.read_table(self._records_file(k)), **arrays)

    def _sample(self, shard: GraphShard, row: int) -> CrystalGraphSample:
        n0, n1 = shard.node_ptr[row], shard.node_ptr[row + 1]
        e0, e1 = shard.edge_ptr[row], shard.edge_ptr[row + 1]
        columns = shard.columns
        line = {}
        if shard.line_ptr is not None:
            t0, t1 = shard.line_ptr[row], shard.line_ptr[row + 1]
            line = {
                "edge_vector": shard.edge_vector[e0:e1],
                "line_index": shard.line_index[:, t0:t1],
                "line_cos": shard.line_cos[t0:t1],
            }
        return CrystalGraphSample(
            uid=columns["uid"][row],
            atomic_numbers=shard.atomic_numbers[n0:n1],
            edge_index=shard.edge_index[:, e0:e1],
            edge_distance=shard.edge_distance[e0:e1],
            edge_image=shard.edge_image[e0:e1],
            lattice=shard.lattices[row],
            frac_coords=shard.frac_coords[n0:n1],
            spacegroup_number=columns["spacegroup_number"][row],
            crystal_system=columns["crystal_system"][row],
            labels={name: columns[name][row] for name in self.label_units},
            **line,
        )


def open_store(path: str | Path, graphs: str | None = None, cache_shards: int = 2) -> Store:
    """Open a finished store for reading. ``graphs`` picks a featurizer by config hash (default: the
    store's default). ``store[i]`` loads whole shards and keeps the last ``cache_shards`` in memory
    (about 10 MB each at 2,048 crystals): raise it for random access over a store that fits in RAM."""
    return Store(path, graphs, cache_shards)
