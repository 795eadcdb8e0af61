"""Converters between canonical records and pymatgen ``Structure`` / ASE ``Atoms``.

``to_structure`` and ``to_atoms`` accept anything with ``lattice``, ``atomic_numbers`` and
``frac_coords``: a :class:`~crystal_data.record.CrystalRecord` or a sample read from a store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from crystal_data.errors import RejectedInput
from crystal_data.record import CrystalRecord

if TYPE_CHECKING:
    from ase import Atoms
    from pymatgen.core import Structure


class HasStructure(Protocol):
    lattice: np.ndarray
    atomic_numbers: np.ndarray
    frac_coords: np.ndarray


def to_structure(crystal: HasStructure) -> Structure:
    from pymatgen.core import Lattice, Structure

    return Structure(
        Lattice(np.asarray(crystal.lattice, dtype=np.float64)),
        [int(z) for z in crystal.atomic_numbers],
        np.asarray(crystal.frac_coords, dtype=np.float64),
        coords_are_cartesian=False,
    )


def from_structure(structure: Structure, source: str, source_id: str, **fields) -> CrystalRecord:
    """A record from an ordered pymatgen ``Structure``; ``fields`` are the other record fields
    (``source_version``, ``origin``, ``labels``)."""
    if not structure.is_ordered:
        raise RejectedInput("partial_occupancy", f"{source}:{source_id} has disordered sites; not supported")
    return CrystalRecord(
        source=source,
        source_id=source_id,
        lattice=structure.lattice.matrix,
        atomic_numbers=[site.specie.Z for site in structure],
        frac_coords=structure.frac_coords,
        **fields,
    )


def to_atoms(crystal: HasStructure) -> Atoms:
    from ase import Atoms

    return Atoms(
        numbers=np.asarray(crystal.atomic_numbers, dtype=int),
        cell=np.asarray(crystal.lattice, dtype=np.float64),
        scaled_positions=np.asarray(crystal.frac_coords, dtype=np.float64),
        pbc=True,
    )


def from_atoms(atoms: Atoms, source: str, source_id: str, **fields) -> CrystalRecord:
    """A record from a fully periodic ASE ``Atoms``."""
    if not np.all(atoms.pbc):
        raise RejectedInput("not_periodic", f"{source}:{source_id} is not periodic in all three directions")
    return CrystalRecord(
        source=source,
        source_id=source_id,
        lattice=np.array(atoms.cell),
        atomic_numbers=atoms.numbers,
        frac_coords=atoms.get_scaled_positions(wrap=False),
        **fields,
    )
