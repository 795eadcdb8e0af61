"""ALIGNN student (Choudhary & DeCost, npj Comput Mater 2021; crysgnn-method.md §10.2).

Input: ALIGNN's own graph of the batch, made by the line-graph featurizer: ``edge_index`` over
undirected bonds (each bond once per direction), ``edge_vector`` (E, 3) for the bond lengths,
``line_index`` (2, T) pairs of bonds (e1, e2) with e1 ending at the atom e2 starts from (backtracking
pairs included) and their ``line_cos`` (T,). Atoms are the crystal's sites in site order, the same
order as in the CGCNN graph the CrysGNN teacher runs on, so ``batch.teacher`` (computed on that
graph) lines up with ``nodes`` row for row even though the edges differ.

Distillation attaches to ``StudentOutput.nodes``: a learned Linear(hidden -> 64) projection of the
atom features after the last of the ALIGNN + EGGC layers (the projection belongs to the student and
trains with it); the distillation loss L2-normalises them per atom. Pooling and the head use the
unprojected hidden-size features.
"""

from __future__ import annotations

from torch import nn
from torch_geometric.utils import scatter

from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.models.defaults import TrainingDefaults
from crysgnn_models.models.output import StudentOutput
from crysgnn_models.nn.alignn_conv import ALIGNNConv
from crysgnn_models.nn.atom_features import AtomFeatures
from crysgnn_models.nn.edge_gated_conv import EdgeGatedGraphConv
from crysgnn_models.nn.mlp_layer import MLPLayer
from crysgnn_models.nn.rbf import RBFExpansion

DEFAULTS = TrainingDefaults(
    optimizer="adamw",
    lr=1e-3,
    weight_decay=1e-5,
    batch_size=64,
    epochs=300,
    scheduler="onecycle",
    milestones=(),
    gamma=1.0,
    loss="mse",
    source="ALIGNN code defaults (crysgnn-method.md §10.2)",
)


class ALIGNN(nn.Module):
    """``forward(batch) -> StudentOutput(prediction (G,), nodes (N, teacher_dim))``.

    Atoms: MLP(92 -> hidden); bonds: RBF(|edge_vector|, 0..``cutoff`` Å, ``edge_bins``) -> MLP(->
    ``embedding``) -> MLP(-> hidden); angles: RBF(cos, -1..1, ``angle_bins``) -> MLP(-> ``embedding``)
    -> MLP(-> hidden), each MLP Linear + BatchNorm + SiLU. Then ``num_alignn_layers`` ALIGNN layers,
    ``num_gcn_layers`` edge-gated convolutions on the atom graph, mean pooling, Linear(hidden -> 1).
    Defaults (256, 64, 4 + 4, 80 and 40 bins): 4,025,729 parameters (ALIGNN's 4,026,753 less the two
    unused edge BatchNorms), plus 16,448 for the 256 -> 64 distillation projection.
    """

    def __init__(
        self,
        hidden: int = 256,
        embedding: int = 64,
        num_alignn_layers: int = 4,
        num_gcn_layers: int = 4,
        edge_bins: int = 80,
        angle_bins: int = 40,
        cutoff: float = 8.0,
        teacher_dim: int = 64,
    ) -> None:
        super().__init__()
        self.atom_features = AtomFeatures()
        self.atom_embedding = MLPLayer(AtomFeatures.num_features, hidden)
        self.edge_embedding = nn.Sequential(
            RBFExpansion(0.0, cutoff, edge_bins), MLPLayer(edge_bins, embedding), MLPLayer(embedding, hidden)
        )
        self.angle_embedding = nn.Sequential(
            RBFExpansion(-1.0, 1.0, angle_bins), MLPLayer(angle_bins, embedding), MLPLayer(embedding, hidden)
        )
        # ALIGNN computes and discards the angle update of its last ALIGNN layer and the bond update of
        # its last EGGC layer; those are skipped here (1,024 BatchNorm parameters fewer).
        self.alignn_layers = nn.ModuleList(
            ALIGNNConv(hidden, update_angles=k < num_alignn_layers - 1) for k in range(num_alignn_layers)
        )
        self.gcn_layers = nn.ModuleList(
            EdgeGatedGraphConv(hidden, update_edges=k < num_gcn_layers - 1) for k in range(num_gcn_layers)
        )
        self.fc = nn.Linear(hidden, 1)
        self.projection = nn.Linear(hidden, teacher_dim)

    def forward(self, batch: GraphBatch) -> StudentOutput:
        if batch.edge_vector is None or batch.line_index is None or batch.line_cos is None:
            raise ValueError("ALIGNN needs edge_vector, line_index and line_cos (the line-graph featurizer)")
        x = self.atom_embedding(self.atom_features(batch.z))
        y = self.edge_embedding(batch.edge_vector.norm(dim=1))
        z = self.angle_embedding(batch.line_cos)
        for layer in self.alignn_layers:
            x, y, z = layer(x, y, z, batch.edge_index, batch.line_index)
        for layer in self.gcn_layers:
            x, y = layer(x, batch.edge_index, y)
        pooled = scatter(x, batch.batch, dim=0, dim_size=batch.num_graphs, reduce="mean")
        return StudentOutput(self.fc(pooled).squeeze(-1), self.projection(x))
