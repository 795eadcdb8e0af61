"""ALIGNN's embedding block: Linear, BatchNorm, SiLU."""

from __future__ import annotations

from torch import nn


class MLPLayer(nn.Sequential):
    """``Linear(in, out) -> BatchNorm1d(out) -> SiLU`` (ALIGNN's atom, bond and angle embeddings)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features), nn.SiLU())
