"""Tier 1: an exact content fingerprint that survives origin shifts, site permutations, supercells
and other settings of the same lattice.

spglib standardises the primitive cell (idealising positions within ``symprec``, which absorbs noise
on special positions); the fingerprint hashes its rounded lattice metric and its sorted, rounded
sites, with the origin on whichever atom of the rarest element gives the smallest site list (spglib
fixes the origin only up to the space group's equivalent choices). Equal fingerprints are duplicates
without a ``StructureMatcher`` call; unequal ones (noise on free coordinates past the rounding, a
rounding boundary) still go to tier 3, so the fingerprint saves fit calls and never decides a
"no".
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
    std_lattice, std_frac, std_numbers = (np.asarray(part) for part in standard)
    lengths = np.round(np.linalg.norm(std_lattice, axis=1), 2)
    gram = np.round(std_lattice @ std_lattice.T, 1)
    digest = hashlib.sha256()
    for part in (lengths, gram, _canonical_sites(std_frac, std_numbers)):
        digest.update(np.ascontiguousarray(part + 0.0).tobytes())  # + 0.0 folds -0.0 into 0.0
    return digest.hexdigest()[:16]


def _canonical_sites(frac: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """(N, 4) rows (Z, x, y, z), rounded, sorted, origin-independent."""
    species, counts = np.unique(numbers, return_counts=True)
    rarest = species[np.argmin(counts)]
    best = None
    for anchor in np.nonzero(numbers == rarest)[0]:
        sites = np.round((frac - frac[anchor]) % 1.0, 3) % 1.0
        rows = np.column_stack([numbers, sites])
        rows = rows[np.lexsort(rows.T[::-1])]
        if best is None or tuple(rows.ravel()) < tuple(best.ravel()):
            best = rows
    return best
