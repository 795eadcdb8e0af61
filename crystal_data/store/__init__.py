"""The store: a directory of sharded records, graphs, rejections and a checksummed manifest."""

from crystal_data.store.reader import CrystalGraphSample, GraphShard, Store, open_store
from crystal_data.store.verify import verify_store

__all__ = ["CrystalGraphSample", "GraphShard", "Store", "open_store", "verify_store"]
