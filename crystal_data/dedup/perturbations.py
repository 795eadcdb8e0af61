"""Physically equivalent rewrites of a crystal, for checking a deduplicator's recall.

Every function returns ``(lattice, atomic_numbers, frac_coords)`` describing the *same* crystal: a
matcher must group it with the original. Used by the accuracy tests and the dedup benchmark.
"""

from __future__ import annotations

import numpy as np

Crystal = tuple[np.ndarray, np.ndarray, np.ndarray]


def coordinate_noise(crystal: Crystal, rng: np.random.Generator, max_displacement: float = 0.01) -> Crystal:
    """Move every atom in a random direction by up to ``max_displacement`` Å."""
    lattice, numbers, frac = crystal
    direction = rng.normal(size=frac.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    step = direction * rng.uniform(0, max_displacement, size=(len(frac), 1))
    return lattice, numbers, _wrap(frac + step @ np.linalg.inv(lattice))


def origin_shift(crystal: Crystal, rng: np.random.Generator) -> Crystal:
    lattice, numbers, frac = crystal
    return lattice, numbers, _wrap(frac + rng.uniform(0, 1, size=3))


def permuted_sites(crystal: Crystal, rng: np.random.Generator) -> Crystal:
    lattice, numbers, frac = crystal
    order = rng.permutation(len(numbers))
    return lattice, numbers[order], frac[order]


def supercell(crystal: Crystal, rng: np.random.Generator) -> Crystal:
    """Double the cell along one random axis."""
    lattice, numbers, frac = crystal
    axis = int(rng.integers(3))
    scale = np.ones(3)
    scale[axis] = 2
    shift = np.zeros(3)
    shift[axis] = 1
    new_frac = np.concatenate([frac, frac + shift]) / scale
    return lattice * scale[:, None], np.concatenate([numbers, numbers]), new_frac


def equivalent_setting(crystal: Crystal, rng: np.random.Generator) -> Crystal:
    """The same lattice described by another basis: ``M @ lattice`` with integer ``M``, det 1."""
    lattice, numbers, frac = crystal
    i, j = rng.choice(3, size=2, replace=False)
    basis_change = np.eye(3, dtype=np.int64)
    basis_change[i, j] = int(rng.choice([-1, 1]))
    return basis_change @ lattice, numbers, _wrap(frac @ np.linalg.inv(basis_change))


def combined(crystal: Crystal, rng: np.random.Generator) -> Crystal:
    for rewrite in (equivalent_setting, supercell, permuted_sites, origin_shift, coordinate_noise):
        crystal = rewrite(crystal, rng)
    return crystal


PERTURBATIONS = {
    "noise": coordinate_noise,
    "origin_shift": origin_shift,
    "permuted": permuted_sites,
    "supercell": supercell,
    "setting": equivalent_setting,
    "combined": combined,
}


def _wrap(frac: np.ndarray) -> np.ndarray:
    return frac - np.floor(frac)
