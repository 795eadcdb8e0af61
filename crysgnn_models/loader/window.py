"""A window: a few shards' arrays concatenated into one flat set, the unit the stream shuffles within."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crysgnn_models.loader.shards import ShardSource


@dataclass
class Window:
    """The crystals of some shards (in window order), numbered 0..C-1 across the window.

    ``shard_base[k]``: the window number of shard k's first crystal (-1 for shards not in the window).
    ``pointers[segment]``: (C + 1,) offsets into that segment's arrays, as in a single shard.
    ``arrays[name]``: each declared ragged array, concatenated, in its stored dtype.
    """

    shard_base: np.ndarray
    pointers: dict[str, np.ndarray]
    arrays: dict[str, np.ndarray]
    spacegroup: np.ndarray
    crystal_system: np.ndarray

    @property
    def nbytes(self) -> int:
        parts = [*self.pointers.values(), *self.arrays.values(), self.spacegroup, self.crystal_system]
        return sum(a.nbytes for a in parts)


def load_window(source: ShardSource, shards: Sequence[int], num_shards: int) -> Window:
    """Read ``shards`` (at least one) into one preallocated flat window: peak memory is the window
    plus one shard's array (two while the next replaces it)."""
    opened = [source.open(k) for k in shards]
    counts = np.array([o.num_crystals for o in opened], dtype=np.int64)
    crystal_start = np.concatenate([[0], np.cumsum(counts)])
    shard_base = np.full(num_shards, -1, dtype=np.int64)
    shard_base[list(shards)] = crystal_start[:-1]

    pointers = {}
    for segment in source.segments:
        ptr = np.empty(crystal_start[-1] + 1, dtype=np.int64)
        offset = 0
        for o, c0, c1 in zip(opened, crystal_start[:-1], crystal_start[1:]):
            local = o.pointers(segment)
            ptr[c0:c1] = local[:-1] + offset
            offset += int(local[-1])
        ptr[-1] = offset
        pointers[segment] = ptr

    arrays = {}
    for array in source.arrays:
        ptr = pointers[array.segment]
        data = opened[0].read(array)
        shape = list(data.shape)
        shape[array.axis] = int(ptr[-1])
        flat = np.empty(shape, dtype=data.dtype)
        for i, (o, c0, c1) in enumerate(zip(opened, crystal_start[:-1], crystal_start[1:])):
            data = data if i == 0 else o.read(array)
            flat[(slice(None),) * array.axis + (slice(ptr[c0], ptr[c1]),)] = data
        arrays[array.name] = flat

    symmetry = [o.symmetry() for o in opened]
    spacegroup = np.concatenate([s[0] for s in symmetry])
    crystal_system = np.concatenate([s[1] for s in symmetry])
    return Window(shard_base, pointers, arrays, spacegroup, crystal_system)
