"""``GraphStream``: batches straight from a store's shards, shuffled by shard windows, split across
DDP ranks and DataLoader workers, with memory bounded by two windows whatever the corpus size."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from torch.utils.data import IterableDataset

from crysgnn_models.loader.arrays import TEACHER_ARRAY, arrays_for_kind
from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.loader.collate import collate, take
from crysgnn_models.loader.order import EpochOrder, epoch_order, shard_of_rows
from crysgnn_models.loader.partition import rank_batches, this_workers_batches
from crysgnn_models.loader.shards import ShardSource
from crysgnn_models.loader.window import Window, load_window
from crystal_data.store.reader import Store

log = logging.getLogger(__name__)


class GraphStream(IterableDataset):
    """An iterable dataset of :class:`GraphBatch` (CPU tensors) read from a store's shards.

    ``rows``: the store rows to use (default: all), e.g. ``CrystalDataset.rows``; ``y`` aligned with
    them (NaN allowed) becomes ``GraphBatch.y``. ``graphs``: the featurizer's config hash (default:
    the store's default); an ``alignn``-kind config adds the line-graph arrays. ``teacher``: a folder
    of per-shard node embeddings (:mod:`crysgnn_models.loader.teacher`) gathered into
    ``GraphBatch.teacher``.

    Order (:func:`~crysgnn_models.loader.order.epoch_order`): a pure function of (seed, epoch, rows,
    shard sizes, buffer_shards); shards are shuffled, then items within windows of ``buffer_shards``
    shards. Batches are split across ranks and workers as :mod:`~crysgnn_models.loader.partition`
    describes; :attr:`dropped` and :attr:`padded` count what ``drop_last`` changed.

    Memory: a worker holds the windows the current batch draws on: two at a window boundary (one
    batch never spans more when a window holds at least ``batch_size`` items). A window of
    ``buffer_shards`` shards of 2,048 Materials Project crystals takes about 7.3 MB per shard
    (``edge_index`` int32 and ``edge_distance`` float32 at ~600K edges per shard), so the default
    8-shard buffer stays under about 120 MB per worker; 64-dim float32 teacher embeddings add about
    13 MB per shard. Per item the stream keeps ~40 bytes (row, shard, order), whatever the graphs.
    """

    def __init__(
        self,
        store: str | Path | Store,
        rows: np.ndarray | None = None,
        *,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        buffer_shards: int = 8,
        rank: int = 0,
        world_size: int = 1,
        y: np.ndarray | None = None,
        teacher: str | Path | None = None,
        graphs: str | None = None,
    ):
        super().__init__()
        opened = store if isinstance(store, Store) else Store(store, graphs)
        if isinstance(store, Store) and graphs is not None and graphs != store.graphs_hash:
            opened = Store(store.path, graphs)
        shards = opened.manifest["shards"]
        self.shard_sizes = np.array([s["records"] for s in shards], dtype=np.int64)
        arrays = arrays_for_kind(opened.graph_config["kind"])
        self.source = ShardSource(
            opened.path,
            opened.graphs_hash,
            tuple(s["name"] for s in shards),
            arrays + ((TEACHER_ARRAY,) if teacher is not None else ()),
            None if teacher is None else Path(teacher),
        )

        self.rows = np.arange(len(opened), dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        in_range = len(self.rows) == 0 or 0 <= self.rows.min() <= self.rows.max() < len(opened)
        if self.rows.ndim != 1 or not in_range:
            raise ValueError(f"rows must be a 1-D array of store rows in 0..{len(opened) - 1}")
        if y is not None:
            y = np.asarray(y, dtype=np.float32)
            if y.shape != self.rows.shape:
                raise ValueError(f"y has shape {y.shape}, rows {self.rows.shape}")
        self.y = y
        self._shard, self._row_in_shard = shard_of_rows(self.rows, self.shard_sizes)

        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.buffer_shards, self.rank, self.world_size = buffer_shards, rank, world_size
        self.epoch = 0
        self.step = 0
        """Batches of this rank skipped at the start of the epoch (resuming)."""
        self._batches = rank_batches(len(self.rows), batch_size, world_size, rank, drop_last)
        self.dropped = self._batches.dropped
        self.padded = self._batches.padded
        if self.dropped:
            log.info("drop_last: %d of %d items are left out of every epoch", self.dropped, len(self.rows))
        if self.padded:
            log.warning(
                "%d items repeated in every epoch so that each of %d ranks gets a final batch",
                self.padded,
                world_size,
            )

    @classmethod
    def from_dataset(cls, dataset, **kwargs) -> GraphStream:
        """A stream over a ``crystal_data.CrystalDataset`` (its store, rows, targets and graphs)."""
        kwargs.setdefault("graphs", dataset.graphs)
        return cls(dataset.store_path, dataset.rows, y=dataset.y, **kwargs)

    def __len__(self) -> int:
        """Batches this rank yields per epoch (every rank yields as many)."""
        return len(self._batches)

    def set_epoch(self, epoch: int, step: int = 0) -> None:
        """Use epoch ``epoch``'s order, starting at this rank's batch ``step`` (skipped batches are not
        read)."""
        if not 0 <= step <= len(self):
            raise ValueError(f"step {step} is outside 0..{len(self)}")
        self.epoch, self.step = epoch, step

    @property
    def order_digest(self) -> str:
        """What fixes the order besides seed and epoch: rows and shard sizes (16 hex digits)."""
        digest = hashlib.sha256(self.rows.astype("<i8").tobytes())
        digest.update(self.shard_sizes.astype("<i8").tobytes())
        return digest.hexdigest()[:16]

    def epoch_order(self) -> EpochOrder:
        return epoch_order(
            self.rows,
            self.shard_sizes,
            seed=self.seed,
            epoch=self.epoch,
            shuffle=self.shuffle,
            buffer_shards=self.buffer_shards,
        )

    def __iter__(self) -> Iterator[GraphBatch]:
        mine = this_workers_batches(len(self), self.step)
        if len(mine) == 0:
            return
        order = self.epoch_order()
        windows: dict[int, Window] = {}
        for j in mine:
            yield self.batch_at(order, int(j), windows)

    def batch_at(self, order: EpochOrder, j: int, windows: dict[int, Window]) -> GraphBatch:
        """This rank's batch ``j`` of the epoch ``order``; ``windows`` caches loaded windows between
        calls (the caller's, one per consumer) and holds only this batch's windows afterwards."""
        start, stop = int(self._batches.starts[j]), int(self._batches.stops[j])
        first, last = order.window_of(start), order.window_of(stop - 1)
        for w in [w for w in windows if not first <= w <= last]:
            del windows[w]  # before loading: at most the windows of this batch are held
        parts = []
        for w in range(first, last + 1):
            if w not in windows:
                windows[w] = load_window(self.source, order.shards[w], len(self.shard_sizes))
            items = order.order[max(start, order.bounds[w]) : min(stop, order.bounds[w + 1])]
            crystals = windows[w].shard_base[self._shard[items]] + self._row_in_shard[items]
            parts.append(take(windows[w], crystals, self.source.arrays))
        items = order.order[start:stop]
        return collate(parts, self.source.arrays, self.rows[items], None if self.y is None else self.y[items])

    def __repr__(self) -> str:
        return (
            f"GraphStream({str(self.source.store)!r}, items={len(self.rows)}, batch_size={self.batch_size}, "
            f"batches={len(self)}, rank={self.rank}/{self.world_size}, shuffle={self.shuffle})"
        )
