"""ALIGNN's radial basis expansion of a scalar (a bond length or a bond-angle cosine)."""

from __future__ import annotations

import torch
from torch import nn


class RBFExpansion(nn.Module):
    """``d`` (...,) -> (..., bins): ``exp(-γ (d - c_k)²)`` with centres ``c = linspace(vmin, vmax, bins)``
    and ``γ = 1 / mean(Δc)`` (ALIGNN, crysgnn-method.md §10.2)."""

    def __init__(self, vmin: float = 0.0, vmax: float = 8.0, bins: int = 80) -> None:
        super().__init__()
        centers = torch.linspace(vmin, vmax, bins)
        self.register_buffer("centers", centers, persistent=False)
        self.gamma = 1.0 / float(torch.diff(centers).mean())

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * (d.unsqueeze(-1) - self.centers) ** 2)
