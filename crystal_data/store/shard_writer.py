"""Write one shard: its records (Parquet), graphs (Zarr v3) and rejections, each atomically.

Commit order: graphs, then rejections, then records. A shard is finished exactly when its records
file exists; anything else left by a killed run is replaced when the shard is redone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crystal_data.graphs.config import GraphConfig
from crystal_data.process import Processed, Rejected
from crystal_data.schema import REJECTED_SCHEMA, record_schema
from crystal_data.store import layout
from crystal_data.store.atomic import atomic_write

GRAPH_FORMAT = "crystal_data.graphs/1"
PARQUET_COMPRESSION = "zstd"


def write_shard(
    store: Path,
    index: int,
    processed: Sequence[Processed],
    rejected: Sequence[Rejected],
    *,
    source: str,
    label_units: Mapping[str, str],
    graph_config: GraphConfig,
    metadata: Mapping[str, str],
) -> None:
    tmp = layout.tmp_dir(store)
    atomic_write(
        layout.graphs_path(store, graph_config.hash, index),
        lambda path: write_graphs(path, processed, graph_config),
        tmp,
    )
    rejections = rejected_table(rejected, source)
    atomic_write(layout.build_rejected_path(store, index), lambda path: _write_parquet(rejections, path), tmp)
    records = records_table(processed, label_units, metadata)
    atomic_write(layout.records_path(store, index), lambda path: _write_parquet(records, path), tmp)


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression=PARQUET_COMPRESSION, row_group_size=max(1, table.num_rows))


def records_table(
    processed: Sequence[Processed], label_units: Mapping[str, str], metadata: Mapping[str, str]
) -> pa.Table:
    """The canonical records of a shard as one Arrow table (built from flat buffers, not rows)."""
    schema = record_schema(label_units, metadata)
    records = [p.record for p in processed]
    sizes = np.fromiter((r.nsites for r in records), dtype=np.int32, count=len(records))
    offsets = pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32))
    numbers = np.concatenate([r.atomic_numbers for r in records]) if records else np.zeros(0)
    frac = np.concatenate([r.frac_coords for r in records]) if records else np.zeros((0, 3))
    lattices = np.stack([r.lattice for r in records]) if records else np.zeros((0, 3, 3))
    vec3 = schema.field("frac_coords").type.value_type
    columns = {
        "uid": pa.array([r.uid for r in records], pa.string()),
        "source": pa.array([r.source for r in records], pa.string()),
        "source_id": pa.array([r.source_id for r in records], pa.string()),
        "source_version": pa.array([r.source_version for r in records], pa.string()),
        "origin": pa.array([r.origin for r in records], pa.string()),
        "source_duplicate_of": pa.array([r.source_duplicate_of for r in records], pa.string()),
        "formula": pa.array([p.formula for p in processed], pa.string()),
        "nsites": pa.array(sizes, pa.int32()),
        "lattice": pa.FixedSizeListArray.from_arrays(
            pa.FixedSizeListArray.from_arrays(pa.array(lattices.ravel(), pa.float64()), 3), 3
        ),
        "atomic_numbers": pa.ListArray.from_arrays(offsets, pa.array(numbers.astype(np.uint8), pa.uint8())),
        "frac_coords": pa.ListArray.from_arrays(
            offsets,
            pa.FixedSizeListArray.from_arrays(pa.array(frac.ravel(), pa.float64()), 3),
            type=pa.list_(vec3),
        ),
        "spacegroup_number": pa.array([p.symmetry.spacegroup_number for p in processed], pa.int16()),
        "crystal_system": pa.array([p.symmetry.crystal_system for p in processed], pa.string()),
        "symmetry_error": pa.array([p.symmetry.error for p in processed], pa.string()),
    }
    for name in label_units:
        columns[name] = pa.array([r.labels.get(name) for r in records], pa.float64())
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def rejected_table(rejected: Sequence[Rejected], source: str) -> pa.Table:
    columns = {
        "input": [r.input for r in rejected],
        "source": [r.source or source for r in rejected],
        "source_id": [r.source_id for r in rejected],
        "reason_code": [r.code for r in rejected],
        "reason": [r.reason for r in rejected],
    }
    return pa.Table.from_arrays(
        [pa.array(columns[f.name], f.type) for f in REJECTED_SCHEMA], schema=REJECTED_SCHEMA
    )


def write_graphs(path: Path, processed: Sequence[Processed], config: GraphConfig) -> None:
    """One Zarr v3 group per shard; ragged arrays concatenated, with ``node_ptr``/``edge_ptr`` offsets."""
    graphs = [p.graph for p in processed]
    node_counts = np.array([p.record.nsites for p in processed], dtype=np.int64)
    edge_counts = np.array([g.num_edges for g in graphs], dtype=np.int64)
    arrays = {
        "atomic_numbers": _concat(
            [p.record.atomic_numbers.astype(np.uint8) for p in processed], (0,), np.uint8
        ),
        "node_ptr": np.concatenate([[0], np.cumsum(node_counts)]).astype(np.int64),
        "edge_ptr": np.concatenate([[0], np.cumsum(edge_counts)]).astype(np.int64),
        "edge_index": _concat([g.edge_index for g in graphs], (2, 0), np.int32, axis=1),
        "edge_distance": _concat([g.edge_distance for g in graphs], (0,), np.float32),
        "edge_image": _concat([g.edge_image for g in graphs], (0, 3), np.int8),
    }
    write_graph_group(path, arrays, config.to_dict(), [p.record.uid for p in processed])


def write_graph_group(
    path: Path, arrays: Mapping[str, np.ndarray], config: dict, uids: Sequence[str]
) -> None:
    """Write a shard's graph arrays as one Zarr v3 group (one Blosc-zstd chunk per array) with the
    ``format``, ``graph_config``, ``num_graphs`` and ``uids`` attributes; any featurizer's shards."""
    import zarr
    from zarr.codecs import BloscCodec

    group = zarr.open_group(path, mode="w", zarr_format=3)
    group.attrs.update(
        {"format": GRAPH_FORMAT, "graph_config": config, "num_graphs": len(uids), "uids": list(uids)}
    )
    for name, data in arrays.items():
        compressor = BloscCodec(cname="zstd", clevel=5, shuffle="shuffle", typesize=data.dtype.itemsize)
        array = group.create_array(
            name,
            shape=data.shape,
            dtype=data.dtype,
            chunks=tuple(max(1, n) for n in data.shape),
            compressors=compressor,
        )
        array[...] = data


def _concat(parts: list[np.ndarray], empty_shape: tuple[int, ...], dtype, axis: int = 0) -> np.ndarray:
    if not parts:
        return np.zeros(empty_shape, dtype=dtype)
    return np.concatenate(parts, axis=axis).astype(dtype, copy=False)


def json_metadata(**values: object) -> dict[str, str]:
    """Parquet key-value metadata: every value JSON-encoded under ``crystal_data.<key>``."""
    return {f"crystal_data.{key}": json.dumps(value, sort_keys=True) for key, value in values.items()}
