"""GATGNN student (Louis et al., PCCP 2020; crysgnn-method.md §10.1).

Input: the CrysGNN/CGCNN multigraph of the batch (``edge_index``, ``edge_distance`` -> 41 Gaussians,
atoms -> 92 CGCNN features): the very graph the CrysGNN teacher consumes, same atoms in the same
order, so ``batch.teacher`` rows line up with ``nodes`` one to one.

Distillation attaches to ``StudentOutput.nodes``: the (N, 64) atom features after the last AGAT block
(after its BatchNorm and softplus), before the global composition attention and pooling. They are
64-dimensional like the teacher's, so no projection is needed; the distillation loss L2-normalises
them per atom. The prediction head works on the unnormalised features.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import scatter

from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.models.defaults import TrainingDefaults
from crysgnn_models.models.output import StudentOutput
from crysgnn_models.nn.agat_conv import AGATConv
from crysgnn_models.nn.atom_features import AtomFeatures
from crysgnn_models.nn.composition import composition_fractions
from crysgnn_models.nn.composition_attention import CompositionAttention
from crysgnn_models.nn.gaussian import GaussianExpansion

DEFAULTS = TrainingDefaults(
    optimizer="adamw",
    lr=5e-3,
    weight_decay=0.1,
    batch_size=256,
    epochs=200,
    scheduler="multistep",
    milestones=(150, 250),
    gamma=0.3,
    loss="smooth_l1",
    source="GATGNN code defaults (crysgnn-method.md §10.1); GATGNN applies SmoothL1 to raw targets",
    extra={"early_stopping_patience": 150},
)


class GATGNN(nn.Module):
    """``forward(batch) -> StudentOutput(prediction (G,), nodes (N, hidden))``.

    Atoms: Linear(92 -> hidden); edges: LeakyReLU₀.₂(Linear(41 -> hidden)(Gaussians)); ``num_layers``
    AGAT layers of ``heads`` heads, each followed by BatchNorm1d and softplus; composition attention
    over [x_i ‖ 103-dim composition]; sum pooling; 2 × (Linear(hidden -> hidden) + softplus);
    Linear(hidden -> 1). Defaults: hidden 64, 3 layers, 4 heads (122,874 parameters).
    """

    def __init__(self, hidden: int = 64, num_layers: int = 3, heads: int = 4) -> None:
        super().__init__()
        self.atom_features = AtomFeatures()
        self.gaussians = GaussianExpansion(start=0.0, stop=8.0, step=0.2)
        self.embed_atoms = nn.Linear(AtomFeatures.num_features, hidden)
        self.embed_edges = nn.Linear(self.gaussians.num_centres, hidden)
        self.convs = nn.ModuleList(AGATConv(hidden, hidden, heads) for _ in range(num_layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(num_layers))
        self.composition_attention = CompositionAttention(hidden)
        self.head = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.Softplus(),
            nn.Linear(hidden, hidden),
            nn.Softplus(),
            nn.Linear(hidden, 1),
        )

    def forward(self, batch: GraphBatch) -> StudentOutput:
        x = self.embed_atoms(self.atom_features(batch.z))
        edge_attr = F.leaky_relu(self.embed_edges(self.gaussians(batch.edge_distance)), 0.2)
        for conv, norm in zip(self.convs, self.norms):
            x = F.softplus(norm(conv(x, batch.edge_index, edge_attr)))
        nodes = x
        composition = composition_fractions(batch.z, batch.batch, batch.num_graphs)
        x = x * self.composition_attention(x, batch.batch, composition)
        pooled = scatter(x, batch.batch, dim=0, dim_size=batch.num_graphs, reduce="sum")
        return StudentOutput(self.head(pooled).squeeze(-1), nodes)
