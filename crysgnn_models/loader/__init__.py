"""Streaming batches from a store's shards: :class:`GraphStream` (an ``IterableDataset`` of
:class:`GraphBatch`), :class:`MixedStream` (several streams interleaved, e.g. two stores) and
:class:`GraphLoader` (their DataLoader, resumable mid-epoch)."""

from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.loader.loader import GraphLoader
from crysgnn_models.loader.mixed import MixedStream
from crysgnn_models.loader.stream import GraphStream
from crysgnn_models.loader.teacher import write_node_array_shards

__all__ = ["GraphBatch", "GraphLoader", "GraphStream", "MixedStream", "write_node_array_shards"]
