"""ALIGNN's edge-gated graph convolution (EGGC)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EdgeGatedGraphConv(nn.Module):
    """Edge-gated graph convolution (crysgnn-method.md §10.2), residual on nodes and edges.

    For an edge j -> i (``edge_index[0] = j`` the source, ``edge_index[1] = i`` the target that
    aggregates)::

        m_ji  = W_sg x_j + W_dg x_i + W_eg e_ji,   σ_ji = sigmoid(m_ji)
        x_i'  = x_i  + SiLU(BN(W_s x_i + Σ_j σ_ji ⊙ W_d x_j / (Σ_j σ_ji + 1e-6)))
        e_ji' = e_ji + SiLU(BN(m_ji))

    Every linear map has a bias. A node without incoming edges gets ``W_s x_i`` alone. With
    ``update_edges=False`` (a last layer, whose edge output nobody reads) the edges are returned
    unchanged and the edge BatchNorm is not created.
    """

    def __init__(self, channels: int, update_edges: bool = True) -> None:
        super().__init__()
        self.src_gate = nn.Linear(channels, channels)
        self.dst_gate = nn.Linear(channels, channels)
        self.edge_gate = nn.Linear(channels, channels)
        self.src_update = nn.Linear(channels, channels)  # W_s, applied to the aggregating node itself
        self.dst_update = nn.Linear(channels, channels)  # W_d, applied to the neighbours
        self.bn_nodes = nn.BatchNorm1d(channels)
        self.bn_edges = nn.BatchNorm1d(channels) if update_edges else None

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (N, C), ``edge_index`` (2, E), ``edge_attr`` (E, C) -> updated (x, edge_attr)."""
        src, dst = edge_index
        num_nodes = x.size(0)
        # index_select / index_add_ (not x[src] / scatter): 2x faster forward + backward on CPU, and
        # the in-place adds spare two (E, C) allocations.
        m = self.edge_gate(edge_attr)
        m = m.add_(self.src_gate(x).index_select(0, src)).add_(self.dst_gate(x).index_select(0, dst))
        sigma = torch.sigmoid(m)
        messages = sigma * self.dst_update(x).index_select(0, src)
        weighted = x.new_zeros(num_nodes, messages.size(1)).index_add_(0, dst, messages)
        norm = x.new_zeros(num_nodes, sigma.size(1)).index_add_(0, dst, sigma)
        x = x + F.silu(self.bn_nodes(self.src_update(x) + weighted / (norm + 1e-6)))
        if self.bn_edges is not None:
            edge_attr = edge_attr + F.silu(self.bn_edges(m))
        return x, edge_attr
