"""GATGNN's global composition attention (GI-M1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import softmax

from crysgnn_models.nn.composition import NUM_ELEMENTS


class CompositionAttention(nn.Module):
    """Per-atom weights, a softmax over each crystal's atoms (crysgnn-method.md §10.1)::

        s_i = Linear(hidden -> 1)(softplus(Linear(C + 103 -> hidden)([x_i ‖ comp_G])))
        a_i = softmax of s_i over the atoms of i's crystal G

    GATGNN multiplies the atom features by these weights before pooling.
    """

    def __init__(self, channels: int = 64, hidden: int = 32, num_elements: int = NUM_ELEMENTS) -> None:
        super().__init__()
        self.node_layer = nn.Linear(channels + num_elements, hidden)
        self.attention_layer = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, batch: torch.Tensor, composition: torch.Tensor) -> torch.Tensor:
        """``x`` (N, C), ``batch`` (N,), ``composition`` (G, 103) -> weights (N, 1)."""
        chunk = torch.cat([x, composition[batch]], dim=-1)
        scores = self.attention_layer(F.softplus(self.node_layer(chunk)))
        return softmax(scores, batch, num_nodes=composition.size(0))
