"""Per-crystal readout of node features."""

from __future__ import annotations

import torch


def mean_pool(x: torch.Tensor, batch: torch.Tensor, ptr: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (N, D) over each crystal's nodes -> (G, D); ``batch`` (N,) and ``ptr`` (G + 1,) as in
    :class:`~crysgnn_models.loader.batch.GraphBatch`. A crystal without nodes pools to zeros."""
    num_graphs = ptr.numel() - 1
    sums = x.new_zeros(num_graphs, x.shape[1]).index_add_(0, batch, x)
    counts = (ptr[1:] - ptr[:-1]).clamp(min=1).to(x.dtype)
    return sums / counts.unsqueeze(1)
