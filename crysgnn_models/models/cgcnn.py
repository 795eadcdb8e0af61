"""CGCNN student (Xie & Grossman, PRL 2018; the distilled CGCNN of method.md §6.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.models.defaults import TrainingDefaults
from crysgnn_models.models.output import StudentOutput
from crysgnn_models.nn.encoder import CGCNNEncoder
from crysgnn_models.nn.pooling import mean_pool

DEFAULTS = TrainingDefaults(
    source="CrysGNN distilled CGCNN train.py (method.md §6.3): Adam 3e-3, batch 128, 1000 epochs, "
    "MultiStepLR at 100 (x0.1), MSE on normalised targets",
)


class CGCNN(nn.Module):
    """``forward(batch) -> StudentOutput(prediction (G,), nodes (N, node_dim))``.

    ``encoder``: embedding Linear(92 -> 64, with bias) and ``n_conv`` (3) CGCNN convolutions; mean pool;
    softplus -> ``conv_to_fc`` Linear(64 -> 128) -> softplus -> ``fc_out`` Linear(128 -> 1). 80,833
    parameters with the defaults, as the reference's logs. Distillation attaches to ``nodes``: the atom
    features after the last convolution, unnormalised (the distillation loss normalises them); pooling
    and head use the same unnormalised features.
    """

    def __init__(self, node_dim: int = 64, n_conv: int = 3, hidden_dim: int = 128) -> None:
        super().__init__()
        self.encoder = CGCNNEncoder(n_conv=n_conv, node_dim=node_dim, embedding_bias=True, normalize=False)
        self.conv_to_fc = nn.Linear(node_dim, hidden_dim)
        self.fc_out = nn.Linear(hidden_dim, 1)

    def input_features(self, batch: GraphBatch) -> torch.Tensor:
        """(N, 92) encoder input: the atoms' CGCNN features."""
        return self.encoder.atom_features(batch.z)

    def forward(self, batch: GraphBatch) -> StudentOutput:
        nodes = self.encoder(batch, self.input_features(batch)).raw
        pooled = mean_pool(nodes, batch.batch, batch.ptr)
        hidden = F.softplus(self.conv_to_fc(F.softplus(pooled)))
        return StudentOutput(self.fc_out(hidden).squeeze(-1), nodes)
