"""One ALIGNN layer: an edge-gated convolution on the atom graph, then one on its line graph."""

from __future__ import annotations

import torch
from torch import nn

from crysgnn_models.nn.edge_gated_conv import EdgeGatedGraphConv


class ALIGNNConv(nn.Module):
    """``(x, y, z) -> (x', y', z')`` (crysgnn-method.md §10.2).

    ``x`` (N, C) atoms, ``y`` (E, C) bonds, ``z`` (T, C) bond pairs (angles). The atom-graph EGGC
    updates atoms and bonds (x, y) -> (x', m); the line-graph EGGC, whose nodes are the bonds, then
    updates (m, z) -> (y', z'). ``update_angles=False`` returns ``z`` unchanged (a last ALIGNN layer).
    """

    def __init__(self, channels: int, update_angles: bool = True) -> None:
        super().__init__()
        self.node_update = EdgeGatedGraphConv(channels)
        self.edge_update = EdgeGatedGraphConv(channels, update_edges=update_angles)

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        z: torch.Tensor,
        edge_index: torch.Tensor,
        line_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, m = self.node_update(x, edge_index, y)
        y, z = self.edge_update(m, line_index, z)
        return x, y, z
