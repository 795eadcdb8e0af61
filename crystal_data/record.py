"""One crystal as the canonical record, before it is written to a store."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from crystal_data.errors import RejectedInput
from crystal_data.schema import make_uid

MIN_VOLUME_PER_ATOM = 1.0
"""Å³. Real crystals have 5 or more; below 1 the lattice is degenerate or the coordinates are wrong,
and an 8 Å neighbour search would explode."""


@dataclass(frozen=True, eq=False)
class CrystalRecord:
    """A periodic crystal: lattice rows are the lattice vectors (Å), coordinates are fractional."""

    source: str
    source_id: str
    lattice: np.ndarray
    atomic_numbers: np.ndarray
    frac_coords: np.ndarray
    source_version: str = ""
    origin: str = ""
    labels: dict[str, float | None] = field(default_factory=dict)
    source_duplicate_of: str | None = None
    """The source's own pointer to the id this entry duplicates (OQMD ``duplicate_entry_id``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "lattice", np.asarray(self.lattice, dtype=np.float64).reshape(3, 3))
        object.__setattr__(self, "atomic_numbers", np.asarray(self.atomic_numbers, dtype=np.int64).ravel())
        object.__setattr__(self, "frac_coords", np.asarray(self.frac_coords, dtype=np.float64).reshape(-1, 3))
        if len(self.atomic_numbers) != len(self.frac_coords):
            raise ValueError(
                f"{self.uid}: {len(self.atomic_numbers)} atomic numbers, {len(self.frac_coords)} coordinates"
            )

    @property
    def uid(self) -> str:
        return make_uid(self.source, self.source_id)

    @property
    def nsites(self) -> int:
        return len(self.atomic_numbers)

    @property
    def formula(self) -> str:
        """Reduced formula, e.g. ``"NaCl"`` (pymatgen's convention)."""
        from pymatgen.core import Composition, Element

        numbers, counts = np.unique(self.atomic_numbers, return_counts=True)
        composition = Composition({Element.from_Z(int(z)): int(c) for z, c in zip(numbers, counts)})
        with warnings.catch_warnings():  # pymatgen warns about He/Ne/Ar electronegativity while ordering
            warnings.simplefilter("ignore")
            return composition.reduced_formula


def check_structure(lattice: np.ndarray, atomic_numbers: np.ndarray, frac_coords: np.ndarray) -> None:
    """Reject what no stage downstream can use: no atoms, unknown elements, non-finite numbers,
    a degenerate lattice. Raises :class:`RejectedInput`."""
    if len(atomic_numbers) == 0:
        raise RejectedInput("no_atoms", "the structure has no atoms")
    bad_z = atomic_numbers[(atomic_numbers < 1) | (atomic_numbers > 118)]
    if len(bad_z):
        raise RejectedInput("unknown_element", f"atomic number {int(bad_z[0])} is not an element")
    if not np.isfinite(frac_coords).all():
        raise RejectedInput("non_finite", "coordinates contain NaN or infinity")
    volume = abs(float(np.linalg.det(lattice))) if np.isfinite(lattice).all() else 0.0
    if not volume / len(atomic_numbers) >= MIN_VOLUME_PER_ATOM:
        raise RejectedInput(
            "degenerate_lattice",
            f"cell volume {volume:.4g} Å³ for {len(atomic_numbers)} atoms "
            f"(< {MIN_VOLUME_PER_ATOM} Å³ per atom)",
        )
