"""Read the parts of one store shard a batch needs: declared ragged arrays, offsets, symmetry labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crysgnn_models.loader.arrays import NODE, POINTERS, TEACHER_ARRAY, RaggedArray, segments_of
from crysgnn_models.loader.teacher import read_node_array
from crystal_data.schema import CRYSTAL_SYSTEMS
from crystal_data.store import layout

LABEL_COLUMNS = ("spacegroup_number", "crystal_system")


def symmetry_classes(records: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(space-group class = number - 1, crystal-system class in ``CRYSTAL_SYSTEMS`` order), int64,
    ``-1`` where the record has no symmetry."""
    spacegroup = pc.fill_null(records.column("spacegroup_number"), 0).to_numpy().astype(np.int64) - 1
    system = pc.index_in(records.column("crystal_system"), value_set=pa.array(CRYSTAL_SYSTEMS))
    return spacegroup, pc.fill_null(system, -1).to_numpy().astype(np.int64)


@dataclass(frozen=True)
class ShardSource:
    """Where a store's shards are and which arrays to read (paths and names only: cheap to pickle, so
    every DataLoader worker opens the files itself)."""

    store: Path
    graphs_hash: str
    names: tuple[str, ...]
    arrays: tuple[RaggedArray, ...]
    teacher: Path | None = None

    @property
    def segments(self) -> tuple[str, ...]:
        return segments_of(self.arrays)

    def open(self, k: int) -> OpenShard:
        return OpenShard(self, k)


class OpenShard:
    """One shard with its Zarr group open; arrays are read on request, offsets once."""

    def __init__(self, source: ShardSource, k: int):
        import zarr

        self.source = source
        self.name = source.names[k]
        self.group = zarr.open_group(
            source.store / layout.GRAPHS_DIR / source.graphs_hash / f"{self.name}.zarr", mode="r"
        )
        self._pointers: dict[str, np.ndarray] = {}

    @property
    def num_crystals(self) -> int:
        return len(self.pointers(NODE)) - 1

    def pointers(self, segment: str) -> np.ndarray:
        if segment not in self._pointers:
            self._pointers[segment] = self.group[POINTERS[segment]][...]
        return self._pointers[segment]

    def read(self, array: RaggedArray) -> np.ndarray:
        """The array as stored (teacher embeddings as float32)."""
        if array is TEACHER_ARRAY:
            return read_node_array(self.source.teacher, self.name, int(self.pointers(NODE)[-1]))
        return self.group[array.name][...]

    def symmetry(self) -> tuple[np.ndarray, np.ndarray]:
        records = self.source.store / layout.RECORDS_DIR / f"{self.name}.parquet"
        return symmetry_classes(pq.read_table(records, columns=list(LABEL_COLUMNS)))
