"""``MixedStream``: the batches of several :class:`GraphStream` (e.g. over two stores), interleaved, so
one training epoch goes once through every crystal of each, as one resumable stream."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import IterableDataset

from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.loader.partition import this_workers_batches
from crysgnn_models.loader.stream import GraphStream


class MixedStream(IterableDataset):
    """Every batch of each of ``streams``, in an interleaved order.

    Each stream keeps its own order (shards, windows, ranks, ``drop_last``), so a batch holds crystals
    of one stream only. The interleaving is a pure function of (seed, epoch): with ``shuffle`` a
    generator seeded from them permutes the sequence of stream labels ``[0] * len(streams[0]) + [1] *
    len(streams[1]) + ...``; without, the streams come one after the other. Every rank computes the same
    sequence (the streams have as many batches on every rank), and DataLoader workers split it as a
    :class:`GraphStream` splits its own batches, so :class:`~crysgnn_models.loader.GraphLoader` resumes
    a mixed stream mid-epoch exactly. The streams must share the batch size and the DDP layout, and
    take this stream's ``seed``. Memory: each stream holds its own windows (two at most, per worker).
    """

    def __init__(self, streams: Sequence[GraphStream], *, seed: int = 0):
        super().__init__()
        if not streams:
            raise ValueError("MixedStream needs at least one stream")
        for name in ("batch_size", "world_size", "rank", "shuffle", "drop_last", "buffer_shards"):
            values = {getattr(stream, name) for stream in streams}
            if len(values) > 1:
                raise ValueError(f"the streams of a MixedStream must share {name}, got {sorted(values)}")
        self.streams = tuple(streams)
        first = self.streams[0]
        self.batch_size, self.world_size, self.rank = first.batch_size, first.world_size, first.rank
        self.shuffle, self.drop_last, self.buffer_shards = first.shuffle, first.drop_last, first.buffer_shards
        self.seed = seed
        self.epoch = 0
        self.step = 0
        self.dropped = sum(stream.dropped for stream in self.streams)
        self.padded = sum(stream.padded for stream in self.streams)

    @property
    def seed(self) -> int:
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:  # GraphLoader.load_state_dict sets it: every stream follows
        self._seed = value
        for stream in self.streams:
            stream.seed = value

    def __len__(self) -> int:
        return sum(len(stream) for stream in self.streams)

    def set_epoch(self, epoch: int, step: int = 0) -> None:
        """Use epoch ``epoch``'s order, starting at batch ``step`` of the mixed sequence."""
        if not 0 <= step <= len(self):
            raise ValueError(f"step {step} is outside 0..{len(self)}")
        self.epoch, self.step = epoch, step
        for stream in self.streams:
            stream.set_epoch(epoch)

    @property
    def order_digest(self) -> str:
        """The streams' digests, in order (16 hex digits)."""
        joined = ",".join(stream.order_digest for stream in self.streams)
        return hashlib.sha256(joined.encode()).hexdigest()[:16]

    def labels(self) -> np.ndarray:
        """The stream of each batch of this epoch, in order."""
        labels = np.repeat(np.arange(len(self.streams)), [len(stream) for stream in self.streams])
        if not self.shuffle:
            return labels
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, len(self.streams)]))
        return labels[rng.permutation(len(labels))]

    def __iter__(self) -> Iterator[GraphBatch]:
        mine = this_workers_batches(len(self), self.step)
        if len(mine) == 0:
            return
        labels = self.labels()
        # position of each mixed batch within its own stream's batches
        within = np.zeros(len(labels), dtype=np.int64)
        for k in range(len(self.streams)):
            at = labels == k
            within[at] = np.arange(int(at.sum()))
        orders = [stream.epoch_order() for stream in self.streams]
        windows: list[dict] = [{} for _ in self.streams]
        for j in mine:
            k = int(labels[j])
            yield self.streams[k].batch_at(orders[k], int(within[j]), windows[k])

    def __repr__(self) -> str:
        return f"MixedStream({', '.join(repr(stream) for stream in self.streams)}, seed={self.seed})"
