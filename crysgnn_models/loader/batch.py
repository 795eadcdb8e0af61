"""The batch every model in ``crysgnn_models`` consumes: flat tensors in PyTorch Geometric layout."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass
class GraphBatch:
    """``num_graphs`` crystals concatenated, PyTorch Geometric style.

    Node tensors are concatenated over crystals in batch order; ``edge_index`` (2, E) holds batch-wide
    node numbers, row 0 the source (the neighbour) and row 1 the target (the centre atom that
    aggregates), as in the store. Atom features are not materialised here: models look ``z`` up in the
    92-dim CGCNN table on their own device, and expand ``edge_distance`` into Gaussians there too.

    Graph-level labels use ``-1`` for "unknown" (ignored by the losses); ``y`` is ``NaN`` where a
    crystal has no target. Optional tensors are ``None`` unless the loader was asked for them:
    ``edge_vector`` / ``line_index`` / ``line_cos`` for line-graph models (ALIGNN featurizer),
    ``teacher`` for distillation from precomputed teacher node embeddings.
    """

    z: torch.Tensor
    """(N,) int64 atomic numbers."""
    edge_index: torch.Tensor
    """(2, E) int64: source (neighbour) -> target (centre), batch-wide node numbers."""
    edge_distance: torch.Tensor
    """(E,) float32, Å."""
    batch: torch.Tensor
    """(N,) int64: the crystal (0..num_graphs-1) of every node."""
    ptr: torch.Tensor
    """(num_graphs + 1,) int64 node offsets: crystal g owns nodes ptr[g]:ptr[g+1]."""
    index: torch.Tensor
    """(num_graphs,) int64: each crystal's row in the store (``store[index[g]]``)."""
    spacegroup: torch.Tensor
    """(num_graphs,) int64 class 0..229 (space-group number - 1), -1 unknown."""
    crystal_system: torch.Tensor
    """(num_graphs,) int64 class 0..6 in :data:`crystal_data.schema.CRYSTAL_SYSTEMS` order, -1 unknown."""
    y: torch.Tensor | None = None
    """(num_graphs,) float32 target, NaN where missing; ``None`` without a target."""
    teacher: torch.Tensor | None = None
    """(N, D) float32 precomputed teacher node embeddings, aligned with ``z``."""
    edge_vector: torch.Tensor | None = None
    """(E, 3) float32 displacement source -> target in Å (line-graph featurizer)."""
    line_index: torch.Tensor | None = None
    """(2, T) int64 pairs of batch-wide edge numbers (e1, e2) sharing the atom e1 ends and e2 starts at
    (line-graph featurizer)."""
    line_cos: torch.Tensor | None = None
    """(T,) float32 cosine of the bond angle of each line-graph pair."""

    @property
    def num_graphs(self) -> int:
        return int(self.ptr.numel() - 1)

    @property
    def num_nodes(self) -> int:
        return int(self.z.numel())

    @property
    def num_edges(self) -> int:
        return int(self.edge_distance.numel())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> GraphBatch:
        """A copy on ``device`` (``non_blocking`` pays off from pinned memory)."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
            for f in fields(self)
            if getattr(self, f.name) is not None
        }
        return replace(self, **moved)

    def pin_memory(self) -> GraphBatch:
        """Called by ``torch.utils.data.DataLoader(pin_memory=True)``."""
        pinned = {
            f.name: getattr(self, f.name).pin_memory()
            for f in fields(self)
            if getattr(self, f.name) is not None
        }
        return replace(self, **pinned)

    def to_pyg(self):
        """The same batch as a ``torch_geometric.data.Batch`` (for PyG utilities; models here take
        :class:`GraphBatch` directly)."""
        from torch_geometric.data import Batch

        out = Batch(
            z=self.z,
            edge_index=self.edge_index,
            edge_distance=self.edge_distance,
            batch=self.batch,
            ptr=self.ptr,
            index=self.index,
            spacegroup=self.spacegroup,
            crystal_system=self.crystal_system,
        )
        for name in ("y", "teacher", "edge_vector", "line_index", "line_cos"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out
