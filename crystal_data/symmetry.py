"""Space group and crystal system with spglib: one call per crystal."""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from crystal_data.schema import crystal_system_of

# spglib's C code prints search diagnostics ("ssm_get_exact_positions failed.") to stderr for ~1 in
# 1,000 real crystals, interleaved with progress bars; outcomes are recorded per record instead.
# SPGLIB_WARNING=ON in the environment brings them back.
os.environ.setdefault("SPGLIB_WARNING", "OFF")


@dataclass(frozen=True)
class SymmetryConfig:
    """spglib tolerances. ``symprec`` 0.1 Å is the Materials Project convention (the reference CrysGNN
    labels used pymatgen's default 0.01); ``angle_tolerance`` 5° matches pymatgen's
    ``SpacegroupAnalyzer``."""

    symprec: float = 0.1
    angle_tolerance: float = 5.0

    def to_dict(self) -> dict:
        return {**asdict(self), "spglib_version": spglib_version()}


@dataclass(frozen=True)
class SymmetryResult:
    spacegroup_number: int | None
    crystal_system: str | None
    error: str | None
    """Why spglib gave no answer; ``None`` when it did."""


def spglib_version() -> str:
    import spglib

    return spglib.__version__


def analyze_symmetry(
    lattice: np.ndarray, frac_coords: np.ndarray, atomic_numbers: np.ndarray, config: SymmetryConfig
) -> SymmetryResult:
    """Space-group number (1-230) and crystal system; on failure the error, never a guess."""
    import spglib

    cell = (np.asarray(lattice, float), np.asarray(frac_coords, float), np.asarray(atomic_numbers, np.int32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            dataset = spglib.get_symmetry_dataset(
                cell, symprec=config.symprec, angle_tolerance=config.angle_tolerance
            )
        except spglib.error.SpglibError as exc:
            return SymmetryResult(None, None, f"spglib: {exc}")
        if dataset is None:
            return SymmetryResult(None, None, f"spglib: {spglib.get_error_message() or 'no symmetry found'}")
    number = int(dataset.number)
    return SymmetryResult(number, crystal_system_of(number), None)
