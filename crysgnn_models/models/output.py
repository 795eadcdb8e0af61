"""What every property predictor (student) returns."""

from __future__ import annotations

from typing import NamedTuple

import torch


class StudentOutput(NamedTuple):
    """``prediction`` (G,): the (normalised) target per crystal. ``nodes`` (N, 64): the per-atom features
    the distillation loss compares with the teacher's, before L2 normalisation (which the loss applies);
    rows aligned with ``batch.z``. Each student's docstring says where they are taken."""

    prediction: torch.Tensor
    nodes: torch.Tensor
