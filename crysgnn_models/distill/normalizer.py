"""Target normalisation fitted on the training split only (the reference leaked val/test, §11 B5)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Normalizer:
    mean: float
    std: float

    @classmethod
    def fit(cls, y: np.ndarray) -> Normalizer:
        y = np.asarray(y, dtype=np.float64)
        y = y[np.isfinite(y)]
        if len(y) == 0:
            raise ValueError("cannot fit a target normaliser: no finite training targets")
        std = float(y.std())
        return cls(float(y.mean()), std if std > 0 else 1.0)

    def norm(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.mean) / self.std

    def denorm(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std + self.mean

    def to_dict(self) -> dict:
        return asdict(self)
