"""What ``crystal_data.load`` returns: one split of one target, read from a store's shards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from crystal_data.splits import SplitScheme
from crystal_data.store.reader import CrystalGraphSample, Store

DEFAULT_CACHE_BYTES = 1 << 30
"""Memory for whole shards kept between reads (about 15 MB per shard of 2,048 Materials Project
crystals): a store of up to about 140,000 such crystals stays in memory after the first epoch, a
larger one is read again shard by shard."""


class LabelledGraph(NamedTuple):
    """``ds[i]``: the crystal's graph and its target value (``None`` without a target)."""

    graph: CrystalGraphSample
    y: float | None


def shard_cache_size(manifest: dict, budget_bytes: int, graphs: str | None = None) -> int:
    """How many shards fit in ``budget_bytes`` once read (estimated from the manifest's counts: the
    records' columns and Python label lists, node and edge arrays; ``graphs`` is the featurizer's
    hash, default the store's default), at least 2."""
    shards = manifest["shards"]
    if not shards:
        return 2
    kind = manifest["graphs"][graphs or manifest["default_graphs"]].get("kind", "knn-multigraph")
    # Calibrated on the 33K Materials Project store: 14.6 MB measured per shard of 2,048 crystals. ALIGNN
    # graphs hold about 1.2 edges and 14 line pairs (12 bytes each) per knn edge, plus edge vectors.
    per_edge = 230 if kind == "alignn" else 16
    largest = max(s["records"] * 3500 + s["nodes"] * 64 + s["edges"] * per_edge for s in shards)
    return max(2, min(len(shards), budget_bytes // max(largest, 1)))


class CrystalDataset:
    """A map-style dataset: ``len(ds)``, ``ds[i]`` -> :class:`LabelledGraph`, ``ds.records`` (Polars),
    ``ds.to_torch()`` / ``ds.dataloader()`` for training.

    Items are read from the store's shards when asked for, whole shards at a time, keeping as many as
    fit in ``cache_bytes``; the dataset holds only its row numbers and targets.
    Item ``i`` is the split's ``i``-th entry in the recipe's order (the order of ALIGNN's id lists).
    """

    def __init__(
        self,
        store_path: str | Path,
        rows: np.ndarray,
        *,
        name: str,
        split: str,
        target: str | None,
        scheme: SplitScheme | None,
        graphs: str | None = None,
        missing: list[str] | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ):
        self.store_path = Path(store_path)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.name = name
        self.split = split
        self.target = target
        self.scheme = scheme
        self.graphs = graphs
        self.missing = list(missing or [])
        """uids the split holds that are not records of the store (rejected by the build)."""
        self.cache_bytes = cache_bytes
        self._store: Store | None = None
        self._y: np.ndarray | None = None

    @property
    def store(self) -> Store:
        """The opened store (shared by every item read)."""
        if self._store is None:
            probe = Store(self.store_path, self.graphs)
            self._store = Store(
                self.store_path,
                self.graphs,
                cache_shards=shard_cache_size(probe.manifest, self.cache_bytes, self.graphs),
            )
        return self._store

    @property
    def unit(self) -> str | None:
        return self.store.label_units.get(self.target) if self.target else None

    @property
    def y(self) -> np.ndarray | None:
        """The targets in item order (float64), or ``None`` without a target."""
        if self.target is None:
            return None
        if self._y is None:
            column = self.store.records_table(columns=[self.target]).column(self.target)
            self._y = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)[self.rows]
        return self._y

    @property
    def uids(self) -> list[str]:
        column = self.store.records_table(columns=["uid"]).column("uid")
        return column.take(self.rows).to_pylist()

    @property
    def records(self):
        """The items' records as a Polars DataFrame, in item order (row i is ``ds[i]``)."""
        return self.store.records[self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> LabelledGraph:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        graph = self.store[int(self.rows[index])]
        y = None if self.target is None else float(self.y[index])
        return LabelledGraph(graph, y)

    def __iter__(self) -> Iterator[LabelledGraph]:
        for index in range(len(self)):
            yield self[index]

    def to_torch(self):
        """A torch ``Dataset`` of PyTorch Geometric ``Data`` (:func:`crystal_data.torch_graphs.to_data`)."""
        from crystal_data.torch_graphs import TorchGraphs

        return TorchGraphs(self)

    def dataloader(self, batch_size: int = 64, shuffle: bool | None = None, **kwargs):
        """A PyTorch Geometric ``DataLoader`` over :meth:`to_torch` (shuffled for ``train`` unless
        ``shuffle`` says otherwise); ``kwargs`` go to the loader (``num_workers`` ...)."""
        from torch_geometric.loader import DataLoader

        shuffle = self.split == "train" if shuffle is None else shuffle
        return DataLoader(self.to_torch(), batch_size=batch_size, shuffle=shuffle, **kwargs)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_store"] = None  # loader workers reopen the store instead of copying its cached shards
        return state

    def __repr__(self) -> str:
        scheme = f", scheme={self.scheme.name!r}" if self.scheme else ""
        return (
            f"CrystalDataset({self.name!r}, split={self.split!r}, target={self.target!r}{scheme}, "
            f"items={len(self)}, store={str(self.store_path)!r})"
        )
