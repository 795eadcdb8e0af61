"""GATGNN's augmented graph-attention layer (AGAT)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn.inits import glorot
from torch_geometric.utils import softmax


class AGATConv(nn.Module):
    """Multi-head attention over a centre atom's incoming edges, edge features mixed into both ends
    (GATGNN, crysgnn-method.md §10.1).

    For an edge j -> i (``edge_index[0] = j`` the neighbour, ``edge_index[1] = i`` the centre that
    aggregates) and each head h::

        x̃_i = softplus([x_i ‖ e_ij] W),   x̃_j = softplus([x_j ‖ e_ij] W)        W: (C + D) × (H·C)
        α_ij = softmax over i's incoming edges of softplus(BN_heads(softplus(⟨[x̃_i ‖ x̃_j], a_h⟩)))
        x_i' = mean_h Σ_j α_ij x̃_j + b

    ``BN_heads`` is a BatchNorm1d over the H attention logits of all edges in the batch, so in training
    mode the weights depend on the rest of the batch (as in GATGNN); in eval mode they do not.
    """

    def __init__(self, channels: int = 64, edge_dim: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.channels, self.edge_dim, self.heads = channels, edge_dim, heads
        self.weight = nn.Parameter(torch.empty(channels + edge_dim, heads * channels))
        self.att = nn.Parameter(torch.empty(heads, 2 * channels))
        self.bias = nn.Parameter(torch.empty(channels))
        self.bn_heads = nn.BatchNorm1d(heads)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        glorot(self.weight)
        glorot(self.att)
        nn.init.zeros_(self.bias)
        self.bn_heads.reset_parameters()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        """``x`` (N, C), ``edge_index`` (2, E), ``edge_attr`` (E, D) -> (N, C)."""
        neighbours, alpha = self._attend(x, edge_index, edge_attr)
        messages = (neighbours * alpha.unsqueeze(-1)).flatten(1)
        summed = x.new_zeros(x.size(0), messages.size(1)).index_add_(0, edge_index[1], messages)
        return summed.view(-1, self.heads, self.channels).mean(dim=1) + self.bias

    def attention(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        """The attention weights α (E, H): for each head they sum to 1 over every centre's incoming edges."""
        return self._attend(x, edge_index, edge_attr)[1]

    def _attend(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        src, dst = edge_index
        shape = (-1, self.heads, self.channels)
        # [x ‖ e] W = x W_x + e W_e: the node half is computed once per atom, not once per edge.
        w_node, w_edge = self.weight.split([self.channels, self.edge_dim])
        node_part, edge_part = x @ w_node, edge_attr @ w_edge
        centres = F.softplus(node_part.index_select(0, dst) + edge_part).view(shape)
        neighbours = F.softplus(node_part.index_select(0, src) + edge_part).view(shape)
        a_centre, a_neighbour = self.att.split(self.channels, dim=1)
        logits = F.softplus((centres * a_centre).sum(-1) + (neighbours * a_neighbour).sum(-1))
        alpha = softmax(F.softplus(self.bn_heads(logits)), dst, num_nodes=x.size(0))
        return neighbours, alpha
