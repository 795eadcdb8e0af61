"""The epoch order: a pure function of (seed, epoch, rows, shard sizes, buffer_shards), computed from the
manifest alone, without reading any data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EpochOrder:
    """``order``: item positions (into ``rows``) in the order the epoch visits them. The order is cut
    into windows: window w is ``order[bounds[w]:bounds[w+1]]`` and draws only on ``shards[w]``."""

    order: np.ndarray
    bounds: np.ndarray
    shards: tuple[np.ndarray, ...]

    def window_of(self, position: int) -> int:
        """The window holding ``order[position]``."""
        return int(np.searchsorted(self.bounds, position, side="right")) - 1


def shard_of_rows(rows: np.ndarray, shard_sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shard, row within shard) of each store row."""
    starts = np.concatenate([[0], np.cumsum(shard_sizes)])
    shard = np.searchsorted(starts, rows, side="right") - 1
    return shard, rows - starts[shard]


def epoch_order(
    rows: np.ndarray,
    shard_sizes: np.ndarray,
    *,
    seed: int,
    epoch: int,
    shuffle: bool,
    buffer_shards: int,
) -> EpochOrder:
    """The items' order for one epoch.

    With ``shuffle``: a generator seeded from (seed, epoch) permutes the shards holding items; the
    permuted shards are grouped into windows of ``buffer_shards`` consecutive shards; each window's
    items (its shards' items in window order, each shard's by ascending row) are permuted by the same
    generator. Without: ascending store row (ties in item order), windows of ``buffer_shards``
    consecutive shards.
    """
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be non-negative, got seed={seed}, epoch={epoch}")
    if buffer_shards < 1:
        raise ValueError("buffer_shards must be at least 1")
    rows = np.asarray(rows, dtype=np.int64)
    shard, _ = shard_of_rows(rows, np.asarray(shard_sizes, dtype=np.int64))
    by_row = np.argsort(rows, kind="stable")
    present, first = np.unique(shard[by_row], return_index=True)
    groups = np.split(by_row, first[1:])  # items of each present shard, ascending row

    if shuffle:
        rng = np.random.default_rng(np.random.SeedSequence([seed, epoch]))
        visit = rng.permutation(len(present))
    else:
        rng, visit = None, np.arange(len(present))
    windows = [visit[i : i + buffer_shards] for i in range(0, len(visit), buffer_shards)]

    parts, shards = [], []
    for window in windows:
        items = np.concatenate([groups[k] for k in window])
        parts.append(items[rng.permutation(len(items))] if rng is not None else items)
        shards.append(present[window])
    order = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    bounds = np.concatenate([[0], np.cumsum([len(p) for p in parts], dtype=np.int64)])
    return EpochOrder(order.astype(np.int64), bounds, tuple(shards))
