"""``GraphLoader``: a DataLoader over a :class:`GraphStream` that knows its position, for exact resumes."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DataLoader

from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.loader.mixed import MixedStream
from crysgnn_models.loader.stream import GraphStream

IDENTITY = ("batch_size", "world_size", "buffer_shards", "shuffle", "drop_last", "order_digest")
"""What, besides seed and epoch, fixes which batch comes at which step: must match on resume."""


class GraphLoader:
    """Iterates ``stream`` (a :class:`GraphStream` or :class:`MixedStream`) through
    ``torch.utils.data.DataLoader(batch_size=None)`` and counts the batches handed out (in this
    process), so that :meth:`state_dict` / :meth:`load_state_dict` resume
    at exactly the next batch; the batches skipped are not read.

    Epochs: iterating runs the current epoch from the current step; once it is exhausted the loader
    moves to the next epoch (step 0), so each pass gets a fresh order. :meth:`set_epoch` picks an
    epoch explicitly; it keeps the position when already at that epoch, so the usual loop
    ``for epoch in range(loader.epoch, n): loader.set_epoch(epoch); for batch in loader: ...`` also
    resumes correctly after :meth:`load_state_dict`.
    """

    def __init__(
        self,
        stream: GraphStream | MixedStream,
        *,
        num_workers: int = 0,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
    ):
        self.stream = stream
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.epoch = stream.epoch
        self.step = 0

    def __len__(self) -> int:
        """Batches per epoch (on this rank)."""
        return len(self.stream)

    def set_epoch(self, epoch: int) -> None:
        """Move to ``epoch``, step 0, unless already at ``epoch`` (then the position is kept)."""
        if epoch != self.epoch:
            self.epoch, self.step = epoch, 0

    def __iter__(self) -> Iterator[GraphBatch]:
        self.stream.set_epoch(self.epoch, self.step)
        loader = DataLoader(
            self.stream,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch_factor if self.num_workers else None,
            persistent_workers=False,
        )
        for batch in loader:
            self.step += 1
            yield batch
        self.epoch, self.step = self.epoch + 1, 0

    def state_dict(self) -> dict:
        """A small dict: ``seed``, ``epoch``, ``step`` (batches of this epoch already handed out), and
        what identifies the order (checked by :meth:`load_state_dict`)."""
        stream = self.stream
        return {
            "seed": stream.seed,
            "epoch": self.epoch,
            "step": self.step,
            **{name: getattr(stream, name) for name in IDENTITY},
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue where ``state`` was taken: same seed, epoch and step. A state taken on another
        rank of the same job is fine (every rank is at the same step)."""
        mismatched = {
            name: (state[name], getattr(self.stream, name))
            for name in IDENTITY
            if state[name] != getattr(self.stream, name)
        }
        if mismatched:
            raise ValueError(f"the state is for another order (saved, here): {mismatched}")
        if not 0 <= state["step"] <= len(self):
            raise ValueError(f"step {state['step']} is outside 0..{len(self)}")
        self.stream.seed = state["seed"]
        self.epoch, self.step = state["epoch"], state["step"]
