"""Tier 1: an exact content fingerprint that survives origin shifts, site permutations, supercells
and other settings of the same lattice.

spglib standardises the primitive cell (idealising positions within ``symprec``, which also absorbs
small coordinate noise); the fingerprint hashes its space group, rounded lattice and sorted, rounded
sites. Equal fingerprints are duplicates without a ``StructureMatcher`` call; unequal ones still go to
tier 3, so a rounding boundary costs a fit call, never a wrong answer.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np


def structure_fingerprint(
    lattice: np.ndarray,
    frac_coords: np.ndarray,
    atomic_numbers: np.ndarray,
    symprec: float,
    angle_tolerance: float,
) -> str | None:
    """16 hex digits, or ``None`` when spglib cannot standardise the cell."""
    import spglib

    cell = (np.asarray(lattice, float), np.asarray(frac_coords, float), np.asarray(atomic_numbers, np.int32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            standard = spglib.standardize_cell(
                cell, to_primitive=True, no_idealize=False, symprec=symprec, angle_tolerance=angle_tolerance
            )
        except spglib.error.SpglibError:
            return None
    if standard is None:
        return None
    std_lattice, std_frac, std_numbers = standard
    lengths = np.round(np.linalg.norm(std_lattice, axis=1), 2)
    gram = np.round(std_lattice @ std_lattice.T, 1)
    sites = np.round(np.asarray(std_frac) % 1.0, 3) % 1.0
    order = np.lexsort((sites[:, 2], sites[:, 1], sites[:, 0], std_numbers))
    digest = hashlib.sha256()
    for part in (lengths, gram, np.asarray(std_numbers)[order], sites[order]):
        digest.update(np.ascontiguousarray(part + 0.0).tobytes())  # + 0.0 folds -0.0 into 0.0
    return digest.hexdigest()[:16]
