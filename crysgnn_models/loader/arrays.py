"""Which flat arrays a batch gathers, declared by segment: adding a featurizer's arrays is a declaration.

A store shard holds, per *segment* (nodes, edges, line-graph pairs), arrays concatenated over its
crystals, with ``<segment>_ptr`` offsets: crystal g owns entries ``ptr[g]:ptr[g+1]``. Index arrays hold
crystal-local numbers into another segment (``edge_index`` into nodes, ``line_index`` into edges); the
collation adds each crystal's batch-wide offset of that segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NODE, EDGE, LINE = "node", "edge", "line"
POINTERS = {NODE: "node_ptr", EDGE: "edge_ptr", LINE: "line_ptr"}
"""The offsets array of each segment in a shard's Zarr group."""


@dataclass(frozen=True)
class RaggedArray:
    """One per-segment array: read as ``name`` from the shard, delivered as ``GraphBatch.<field>``."""

    name: str
    field: str
    segment: str
    dtype: type
    """dtype in the batch."""
    axis: int = 0
    """The axis that runs along the segment (1 for (2, n) index pairs)."""
    shift: str | None = None
    """For index arrays: the segment the (crystal-local) indices point into."""


CGCNN_ARRAYS = (
    RaggedArray("atomic_numbers", "z", NODE, np.int64),
    RaggedArray("edge_index", "edge_index", EDGE, np.int64, axis=1, shift=NODE),
    RaggedArray("edge_distance", "edge_distance", EDGE, np.float32),
)
"""Every graph kind: what ``crystal_data.graphs/1`` shards hold (``edge_image`` is not read)."""

LINE_GRAPH_ARRAYS = (
    RaggedArray("edge_vector", "edge_vector", EDGE, np.float32),
    RaggedArray("line_index", "line_index", LINE, np.int64, axis=1, shift=EDGE),
    RaggedArray("line_cos", "line_cos", LINE, np.float32),
)
"""The ALIGNN featurizer's extra arrays (``line_ptr`` offsets)."""

TEACHER_ARRAY = RaggedArray("teacher", "teacher", NODE, np.float32)
"""Precomputed teacher node embeddings, read from a separate folder (:mod:`.teacher`)."""

EXTRA_ARRAYS_BY_KIND = {"alignn": LINE_GRAPH_ARRAYS}
"""Per graph kind: the batch arrays of ``crystal_data.store.layout.EXTRA_GRAPH_ARRAYS`` (tested to agree)."""


def arrays_for_kind(kind: str) -> tuple[RaggedArray, ...]:
    """The arrays a batch carries for a graph config ``kind`` (``store.graph_config["kind"]``)."""
    return CGCNN_ARRAYS + EXTRA_ARRAYS_BY_KIND.get(kind, ())


def segments_of(arrays: tuple[RaggedArray, ...]) -> tuple[str, ...]:
    """The segments these arrays use (their own or the one they index), in NODE, EDGE, LINE order."""
    used = {a.segment for a in arrays} | {a.shift for a in arrays if a.shift}
    return tuple(s for s in POINTERS if s in used)
