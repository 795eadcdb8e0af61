"""The composition vector of each crystal (GATGNN's global input)."""

from __future__ import annotations

import torch

NUM_ELEMENTS = 103
"""H .. Lr (Z = 1 .. 103)."""


def composition_fractions(z: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """(G, 103) atom fractions of Z = 1..103 per crystal, computed on ``z``'s device.

    ``z`` (N,) atomic numbers in 1..103 (not checked, to avoid a device sync), ``batch`` (N,) the
    crystal of every atom. Each row of a crystal with atoms sums to 1."""
    counts = torch.zeros(num_graphs, NUM_ELEMENTS, device=z.device)
    counts.index_put_((batch, z.long() - 1), counts.new_ones(z.numel()), accumulate=True)
    return counts / counts.sum(dim=1, keepdim=True).clamp_min(1.0)
