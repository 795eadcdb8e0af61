"""Who gets which batch: global batches to DDP ranks, a rank's batches to DataLoader workers.

The epoch order is cut into global batches of ``batch_size``; global batch k goes to rank
k % world_size, so a *step* is world_size consecutive batches. Every rank yields the same number of
batches. ``drop_last=True`` drops the items after the last whole step (counted in ``dropped``).
``drop_last=False`` splits the items after the last whole step as evenly as possible across ranks
(contiguous chunks, rank order); when there are fewer of them than ranks, the ranks left without
one repeat items from the start of the epoch order, cycling if need be (counted in ``padded``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch.utils.data import get_worker_info


@dataclass(frozen=True)
class RankBatches:
    """One rank's batches as ranges ``[starts[j], stops[j])`` of positions in the epoch order."""

    starts: np.ndarray
    stops: np.ndarray
    dropped: int
    """Items no rank yields (drop_last=True)."""
    padded: int
    """Items yielded twice across ranks, to give every rank a final batch (drop_last=False)."""

    def __len__(self) -> int:
        return len(self.starts)


def rank_batches(num_items: int, batch_size: int, world_size: int, rank: int, drop_last: bool) -> RankBatches:
    if batch_size < 1 or world_size < 1:
        raise ValueError(f"batch_size and world_size must be at least 1, got {batch_size}, {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
    step_items = batch_size * world_size
    steps = num_items // step_items
    first = (np.arange(steps, dtype=np.int64) * world_size + rank) * batch_size
    starts, stops = [first], [first + batch_size]
    left = num_items - steps * step_items
    dropped = padded = 0
    if drop_last:
        dropped = left
    elif left:
        base = steps * step_items
        if left >= world_size:
            sizes = np.full(world_size, left // world_size, dtype=np.int64)
            sizes[: left % world_size] += 1
            start = base + int(sizes[:rank].sum())
            starts.append(np.array([start]))
            stops.append(np.array([start + sizes[rank]]))
        else:
            padded = world_size - left
            start = base + rank if rank < left else (rank - left) % num_items
            starts.append(np.array([start]))
            stops.append(np.array([start + 1]))
    return RankBatches(np.concatenate(starts), np.concatenate(stops), dropped, padded)


def worker_batches(num_batches: int, start: int, worker: int, num_workers: int) -> np.ndarray:
    """The rank's batch numbers worker ``worker`` makes, resuming at batch ``start``: the j-th remaining
    batch goes to worker j % num_workers, which is the order a DataLoader collects them in."""
    return np.arange(start + worker, num_batches, num_workers, dtype=np.int64)


def this_workers_batches(num_batches: int, start: int) -> np.ndarray:
    """:func:`worker_batches` for the DataLoader worker this runs in (every batch outside workers)."""
    info = get_worker_info()
    worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
    return worker_batches(num_batches, start, worker, num_workers)
