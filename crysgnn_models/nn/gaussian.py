"""Gaussian expansion of interatomic distances (CGCNN edge features, method.md §1.2)."""

from __future__ import annotations

import torch
from torch import nn


class GaussianExpansion(nn.Module):
    """``d`` (E,) Å -> (E, K) with ``exp(-(d - mu_k)^2 / sigma^2)``, ``mu_k = start + k * step`` for
    ``k = 0 .. (stop - start) / step`` and ``sigma = step``.

    The defaults give the reference's 41 centres 0.0, 0.2, ..., 8.0. The centres are made on the device
    and in the precision of ``d`` at each call (41 numbers), so no buffer rounds them to float32 before
    a ``.double()`` model sees them, and checkpoints do not carry them.
    """

    def __init__(self, start: float = 0.0, stop: float = 8.0, step: float = 0.2) -> None:
        super().__init__()
        if step <= 0 or stop < start:
            raise ValueError(f"need step > 0 and stop >= start, got start={start} stop={stop} step={step}")
        self.start, self.step = start, step
        self.num_centres = int(round((stop - start) / step)) + 1

    def centres(self, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(K,) the centres μ_k, computed in float64 and rounded once to ``dtype``."""
        k = torch.arange(self.num_centres, dtype=torch.float64, device=device)
        return (self.start + self.step * k).to(dtype)

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        diff = (distance.unsqueeze(-1) - self.centres(distance.device, distance.dtype)) / self.step
        return torch.exp(-diff * diff)
