"""Where things live inside a store directory (docs/store.md)."""

from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.json"
REJECTED = "rejected.parquet"
RECORDS_DIR = "records"
GRAPHS_DIR = "graphs"
BUILD_DIR = ".build"
"""Work area of an unfinished build: the plan, per-shard rejections, temporary files."""
DEDUP_DIR = ".dedup"
"""Work area of an unfinished deduplication."""
LEAKAGE_DIR = ".leakage"
"""Work area of an unfinished leakage check."""
DUPLICATES = "duplicates.parquet"
LEAKAGE = "leakage.parquet"
GRAPH_ARRAYS = ("atomic_numbers", "node_ptr", "edge_ptr", "edge_index", "edge_distance", "edge_image")
"""The arrays of every graph shard's Zarr group."""
EXTRA_GRAPH_ARRAYS = {"alignn": ("edge_vector", "line_ptr", "line_index", "line_cos")}
"""The arrays a graph config ``kind`` stores besides :data:`GRAPH_ARRAYS`."""


def shard_name(index: int) -> str:
    return f"part-{index:05d}"


def records_path(store: Path, index: int) -> Path:
    return store / RECORDS_DIR / f"{shard_name(index)}.parquet"


def graphs_path(store: Path, config_hash: str, index: int) -> Path:
    return store / GRAPHS_DIR / config_hash / f"{shard_name(index)}.zarr"


def build_rejected_path(store: Path, index: int) -> Path:
    return store / BUILD_DIR / "rejected" / f"{shard_name(index)}.parquet"


def plan_path(store: Path) -> Path:
    return store / BUILD_DIR / "plan.json"


def tmp_dir(store: Path) -> Path:
    return store / BUILD_DIR / "tmp"
