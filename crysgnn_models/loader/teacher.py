"""Per-node arrays kept beside a store (precomputed teacher embeddings): one Zarr v3 array per shard.

Layout: ``FOLDER/<shard name>.zarr`` (e.g. ``part-00000.zarr``), shape (nodes of that shard, D),
float32 or float16, rows in the shard's node order (``atomic_numbers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from crystal_data.store.reader import Store


def node_array_path(folder: str | Path, shard_name: str) -> Path:
    return Path(folder) / f"{shard_name}.zarr"


def read_node_array(folder: str | Path, shard_name: str, num_nodes: int) -> np.ndarray:
    """A shard's (num_nodes, D) array as float32; a missing file or a wrong row count is an error."""
    import zarr

    path = node_array_path(folder, shard_name)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no node array for shard {shard_name}")
    array = zarr.open_array(path, mode="r")
    if array.ndim != 2 or array.shape[0] != num_nodes:
        raise ValueError(f"{path}: shape {array.shape}, expected ({num_nodes}, D) for shard {shard_name}")
    return np.asarray(array[...], dtype=np.float32)


def write_node_array_shards(
    folder: str | Path, store: Store, arrays_by_shard: Mapping[int, np.ndarray]
) -> list[Path]:
    """Write ``arrays_by_shard[k]`` ((nodes of shard k, D), float32 or float16) for each shard index k
    given; row counts are checked against the store's manifest. Returns the paths written."""
    import zarr

    shards = store.manifest["shards"]
    written = []
    for k, data in sorted(arrays_by_shard.items()):
        data = np.asarray(data)
        if data.dtype not in (np.float32, np.float16) or data.ndim != 2:
            raise ValueError(f"shard {k}: want 2-D float32 or float16, not {data.dtype} {data.shape}")
        if data.shape[0] != shards[k]["nodes"]:
            raise ValueError(f"shard {k}: {data.shape[0]} rows for {shards[k]['nodes']} nodes")
        path = node_array_path(folder, shards[k]["name"])
        chunks = tuple(max(1, n) for n in data.shape)  # one chunk: shards are read whole
        zarr.create_array(path, shape=data.shape, dtype=data.dtype, chunks=chunks, overwrite=True)[...] = data
        written.append(path)
    return written
