"""Vectorised collation: crystals gathered from a window's flat arrays into one :class:`GraphBatch`,
with numpy index arithmetic only (no per-crystal Python)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from crysgnn_models.loader.arrays import NODE, RaggedArray
from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.loader.window import Window


def ragged_take(ptr: np.ndarray, crystals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the entries of ``crystals`` (in that order) in arrays offset by ``ptr``, and the
    entry count of each crystal."""
    starts = ptr[crystals]
    counts = ptr[crystals + 1] - starts
    ends = np.cumsum(counts)
    total = int(ends[-1]) if len(ends) else 0
    return np.arange(total, dtype=np.int64) + np.repeat(starts - (ends - counts), counts), counts


@dataclass(frozen=True)
class Part:
    """Some crystals of a batch, gathered from one window; index arrays still crystal-local."""

    arrays: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    spacegroup: np.ndarray
    crystal_system: np.ndarray


def take(window: Window, crystals: np.ndarray, arrays: Sequence[RaggedArray]) -> Part:
    """Gather ``crystals`` (window numbers) from ``window``: one fancy index per array."""
    positions, counts = {}, {}
    for segment, ptr in window.pointers.items():
        positions[segment], counts[segment] = ragged_take(ptr, crystals)
    gathered = {a.name: np.take(window.arrays[a.name], positions[a.segment], axis=a.axis) for a in arrays}
    return Part(gathered, counts, window.spacegroup[crystals], window.crystal_system[crystals])


def collate(
    parts: Sequence[Part], arrays: Sequence[RaggedArray], index: np.ndarray, y: np.ndarray | None
) -> GraphBatch:
    """Concatenate ``parts`` (in batch order) into a batch of CPU tensors: index arrays get batch-wide
    numbers, ``batch``/``ptr`` come from the node counts. ``index``: store rows; ``y``: targets."""

    def joined(pieces: list[np.ndarray], axis: int = 0) -> np.ndarray:
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=axis)

    counts = {segment: joined([p.counts[segment] for p in parts]) for segment in parts[0].counts}
    offsets = {segment: np.cumsum(c) - c for segment, c in counts.items()}
    fields = {}
    for array in arrays:
        data = joined([p.arrays[array.name] for p in parts], array.axis).astype(array.dtype, copy=False)
        if array.shift is not None:
            data += np.repeat(offsets[array.shift], counts[array.segment])
        fields[array.field] = torch.from_numpy(data)
    nodes = counts[NODE]
    num_graphs = len(nodes)
    return GraphBatch(
        **fields,
        batch=torch.from_numpy(np.repeat(np.arange(num_graphs, dtype=np.int64), nodes)),
        ptr=torch.from_numpy(np.concatenate([[0], np.cumsum(nodes)]).astype(np.int64)),
        index=torch.from_numpy(np.ascontiguousarray(index, dtype=np.int64)),
        spacegroup=torch.from_numpy(joined([p.spacegroup for p in parts])),
        crystal_system=torch.from_numpy(joined([p.crystal_system for p in parts])),
        y=None if y is None else torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)),
    )
