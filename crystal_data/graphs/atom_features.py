"""The 92-dimensional CGCNN atom feature table shipped with the package (see data/README.md)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np

NUM_FEATURES = 92
MAX_ATOMIC_NUMBER = 100


@lru_cache(maxsize=1)
def atom_feature_table() -> np.ndarray:
    """(101, 92) float32; row Z is element Z's one-hot feature vector, row 0 is all zeros."""
    raw = json.loads(resources.files("crystal_data").joinpath("data/atom_init.json").read_text())
    table = np.zeros((MAX_ATOMIC_NUMBER + 1, NUM_FEATURES), dtype=np.float32)
    for key, vector in raw.items():
        table[int(key)] = vector
    table.setflags(write=False)
    return table


def has_features(atomic_numbers: np.ndarray) -> np.ndarray:
    """Boolean mask: which atomic numbers have a feature vector (1-100)."""
    return (atomic_numbers >= 1) & (atomic_numbers <= MAX_ATOMIC_NUMBER)
