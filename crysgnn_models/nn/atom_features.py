"""Atom features looked up on the model's device from atomic numbers."""

from __future__ import annotations

import torch
from torch import nn

from crystal_data.graphs.atom_features import NUM_FEATURES, atom_feature_table


class AtomFeatures(nn.Module):
    """``z`` (N,) -> (N, 92) CGCNN one-hot features (``crystal_data``'s shipped ``atom_init.json``).

    The table is a non-persistent buffer: it moves with the model, and checkpoints do not carry it.
    """

    num_features = NUM_FEATURES

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", torch.from_numpy(atom_feature_table().copy()), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.table[z]
