"""CrysGNN, the pretrained teacher (Das et al., AAAI 2023; method.md §2-§4), and CrysAE as a configuration
of it (method.md §9.1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.models.reference import pad_like_reference
from crysgnn_models.nn.atom_features import AtomFeatures
from crysgnn_models.nn.encoder import CGCNNEncoder
from crysgnn_models.nn.pooling import mean_pool

NUM_ADJACENCY_CLASSES = 6
"""Pair classes of the connectivity decoder: 0..5 edges j -> i (capped)."""
NUM_SPACEGROUPS = 230


@dataclass
class CrysGNNConfig:
    """The architecture, saved in checkpoints (``to_dict`` / ``from_dict``).

    Defaults are the reference teacher: 64-dim nodes, 5 convolutions, L2-normalised node embeddings, 41
    Gaussians over 0..8 Å. ``spacegroup_head``: build ``fc_sg`` (the 230-way space-group classifier); off
    for CrysAE, which has no graph-level losses. ``compat``: add the reference's padding edges (index 0
    at ``cutoff + 1`` Å up to ``max_neighbors`` per atom, method.md §1.2) to every batch, as the
    released checkpoint was trained with them (see :mod:`crysgnn_models.models.reference`).
    """

    node_dim: int = 64
    n_conv: int = 5
    normalize: bool = True
    edge_start: float = 0.0
    edge_stop: float = 8.0
    edge_step: float = 0.2
    spacegroup_head: bool = True
    compat: bool = False
    max_neighbors: int = 12
    cutoff: float = 8.0

    @classmethod
    def crysae(cls, **overrides) -> CrysGNNConfig:
        """CrysAE (the CrysXPP autoencoder): 3 convolutions, no L2 normalisation, no graph-level head;
        pretrain it with node losses only (:data:`crysgnn_models.pretrain.losses.CRYSAE_WEIGHTS`)."""
        return cls(**{"n_conv": 3, "normalize": False, "spacegroup_head": False, **overrides})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CrysGNNConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown CrysGNNConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)


class CrysGNN(nn.Module):
    """The CGCNN encoder plus the pretraining decoders, named as in the reference checkpoint after
    :func:`~crysgnn_models.models.reference.load_reference_state_dict` maps ``embedding`` / ``convs`` to
    ``encoder.embedding`` / ``encoder.convs``:

    - ``fc_adj``: Bilinear(64, 64 -> 6) and ``fc1``: Linear(6, 6), the pair (connectivity) decoder;
    - ``fc_atom_feature``: Linear(64 -> 92), the atom-feature decoder;
    - ``fc_sg``: Linear(64 -> 230), the space-group head (with ``config.spacegroup_head``).

    With the default configuration it has 162,162 parameters, as the reference.
    """

    def __init__(self, config: CrysGNNConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or CrysGNNConfig()
        self.encoder = CGCNNEncoder(
            n_conv=config.n_conv,
            node_dim=config.node_dim,
            embedding_bias=False,
            normalize=config.normalize,
            edge_start=config.edge_start,
            edge_stop=config.edge_stop,
            edge_step=config.edge_step,
        )
        dim = config.node_dim
        self.fc_adj = nn.Bilinear(dim, dim, NUM_ADJACENCY_CLASSES)
        self.fc1 = nn.Linear(NUM_ADJACENCY_CLASSES, NUM_ADJACENCY_CLASSES)
        self.fc_atom_feature = nn.Linear(dim, AtomFeatures.num_features)
        self.fc_sg = nn.Linear(dim, NUM_SPACEGROUPS) if config.spacegroup_head else None

    def prepare(self, batch: GraphBatch) -> GraphBatch:
        """The graph the encoder reads: ``batch`` itself, or with the reference's padding edges in
        ``compat`` mode (idempotent: a padded batch comes back unchanged)."""
        if self.config.compat:
            return pad_like_reference(batch, self.config.max_neighbors, self.config.cutoff)
        return batch

    def encode(
        self, batch: GraphBatch, node_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(nodes (N, D), graphs (G, D))``: node embeddings after the last convolution, L2-normalised
        per atom when ``config.normalize``, and their mean per crystal (not re-normalised).

        ``node_mask`` (N,) bool: atoms whose input features are replaced by the all-zero vector (no
        element has it) for masked-feature pretraining."""
        batch = self.prepare(batch)
        features = self.encoder.atom_features(batch.z)
        if node_mask is not None:
            features = features.masked_fill(node_mask.unsqueeze(1), 0.0)
        nodes = self.encoder(batch, features).nodes
        return nodes, mean_pool(nodes, batch.batch, batch.ptr)

    def forward(self, batch: GraphBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Same as :meth:`encode` without a mask."""
        return self.encode(batch)

    def adjacency_logits(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Pair-class logits ``fc1(fc_adj(h_i, h_j))`` for every (row i, column j) of each crystal:
        ``rows`` (G, R, D), ``cols`` (G, C, D) -> (G, 6, R, C).

        ``fc1`` is linear, so it is folded into the bilinear form first:
        ``fc1(h_i^T A_k h_j + c_k) = h_i^T (sum_k W1_lk A_k) h_j + (W1 c + b1)_l``, then one batched
        product per block."""
        folded = torch.einsum("lk,kde->lde", self.fc1.weight, self.fc_adj.weight)
        bias = self.fc1.weight @ self.fc_adj.bias + self.fc1.bias
        g, r, d = rows.shape
        left = (rows.reshape(g * r, d) @ folded.permute(1, 0, 2).reshape(d, -1)).view(g, r, -1, d)
        logits = left.transpose(1, 2).reshape(g, -1, d) @ cols.transpose(1, 2)
        return logits.view(g, NUM_ADJACENCY_CLASSES, r, cols.shape[1]) + bias.view(1, -1, 1, 1)
