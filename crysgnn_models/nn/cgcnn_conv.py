"""The CGCNN graph convolution on an edge list (Xie & Grossman 2018; method.md §2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CGCNNConv(nn.Module):
    """One gated CGCNN convolution with a residual softplus update.

    For an edge j -> i (``edge_index[0]`` = j, the neighbour; ``edge_index[1]`` = i, the centre) with edge
    features u_ij: ``z = [v_i ‖ v_j ‖ u_ij]``, ``g = BN1(fc_full(z))``, message ``sigmoid(f) * softplus(c)``
    with ``(f, c)`` the halves of g; ``s_i = BN2(sum of i's messages)``; ``v_i <- softplus(v_i + s_i)``.
    BN1 normalises over all edge rows of the batch, so in the reference's padded layout (N * 12 rows)
    the padding edges count too. Parameter names (``fc_full``, ``bn1``, ``bn2``) match the reference.
    """

    def __init__(self, node_dim: int = 64, edge_dim: int = 41) -> None:
        super().__init__()
        self.node_dim = node_dim
        self.fc_full = nn.Linear(2 * node_dim + edge_dim, 2 * node_dim)
        self.bn1 = nn.BatchNorm1d(2 * node_dim)
        self.bn2 = nn.BatchNorm1d(node_dim)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        """``x`` (N, node_dim), ``edge_index`` (2, E), ``edge_attr`` (E, edge_dim) -> (N, node_dim)."""
        source, target = edge_index[0], edge_index[1]
        f, weight = self.node_dim, self.fc_full.weight
        # fc_full(z) split by blocks of z: the two node blocks are projected once per node (N rows), not
        # once per edge (E = 12 N rows), then gathered; only the edge block is multiplied per edge.
        nodes = x @ torch.cat((weight[:, :f], weight[:, f : 2 * f])).t()
        centre, neighbour = nodes.chunk(2, dim=1)
        edges = F.linear(edge_attr, weight[:, 2 * f :], self.fc_full.bias)
        gated = edges + centre.index_select(0, target) + neighbour.index_select(0, source)
        gate, core = self.bn1(gated).chunk(2, dim=1)
        message = torch.sigmoid(gate) * F.softplus(core)
        summed = x.new_zeros(x.shape[0], self.node_dim).index_add_(0, target, message)
        return F.softplus(x + self.bn2(summed))
