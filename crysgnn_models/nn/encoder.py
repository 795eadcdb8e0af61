"""The CGCNN encoder shared by CrysGNN, CrysAE, the CGCNN / CrysXPP students and the fine-tuned model."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.nn.atom_features import AtomFeatures
from crysgnn_models.nn.cgcnn_conv import CGCNNConv
from crysgnn_models.nn.gaussian import GaussianExpansion


class NodeEmbeddings(NamedTuple):
    """``raw`` (N, D): node features after the last convolution. ``nodes``: the encoder's output, ``raw``
    L2-normalised per atom when the encoder normalises, else ``raw`` itself."""

    raw: torch.Tensor
    nodes: torch.Tensor


class CGCNNEncoder(nn.Module):
    """92-dim atom features -> ``embedding`` (Linear 92 -> node_dim) -> ``n_conv`` :class:`CGCNNConv`.

    CrysGNN: ``n_conv=5, embedding_bias=False, normalize=True``; CrysAE: ``n_conv=3, embedding_bias=False,
    normalize=False``; the CGCNN student: ``n_conv=3, embedding_bias=True``. With ``normalize`` the output
    nodes are ``v / max(|v|_2, 1e-12)`` per atom (method.md §2). Edge features are the Gaussian expansion
    of ``batch.edge_distance`` (:class:`GaussianExpansion` with ``edge_start/stop/step``).
    """

    def __init__(
        self,
        n_conv: int = 5,
        node_dim: int = 64,
        embedding_bias: bool = False,
        normalize: bool = True,
        edge_start: float = 0.0,
        edge_stop: float = 8.0,
        edge_step: float = 0.2,
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.atom_features = AtomFeatures()
        self.expansion = GaussianExpansion(edge_start, edge_stop, edge_step)
        self.embedding = nn.Linear(AtomFeatures.num_features, node_dim, bias=embedding_bias)
        self.convs = nn.ModuleList(CGCNNConv(node_dim, self.expansion.num_centres) for _ in range(n_conv))

    def forward(self, batch: GraphBatch, features: torch.Tensor | None = None) -> NodeEmbeddings:
        """Encode ``batch``; ``features`` (N, 92) replaces the atoms' CGCNN features when given (feature
        selection, masked atoms)."""
        if features is None:
            features = self.atom_features(batch.z)
        x = self.embedding(features)
        # in the parameters' precision (float32 under autocast too: bf16 distances are ~0.03 Å off)
        edge_attr = self.expansion(batch.edge_distance.to(self.embedding.weight.dtype))
        for conv in self.convs:
            x = conv(x, batch.edge_index, edge_attr)
        return NodeEmbeddings(x, F.normalize(x, dim=1, eps=1e-12) if self.normalize else x)
