"""Necessary conditions for a ``StructureMatcher`` fit, checked before calling it.

With ``primitive_cell=True``, ``scale=True``, ``attempt_supercell=False`` and ``allow_subset=False``,
``fit(rep, member)`` works on both structures as reduced by pymatgen (Niggli, then
``get_primitive_structure``), scaled to a common volume, and can only say yes when

1. **the reduced cells have equal numbers of sites** (otherwise no site mapping exists), and
2. **a basis of the representative's lattice matches the member's lattice**: ``fit`` searches the
   representative's lattice for three vectors whose lengths are within ``(1 + ltol)`` of the member's
   basis lengths (and angles within ``angle_tol``), with determinant ±1. Such vectors exist only if
   every successive minimum of the representative's lattice is shorter than ``(1 + ltol)`` times the
   same-rank basis length of the member's (both at unit volume): a vectorisable bound, checked first.
   Pairs that pass it get the matcher's own lattice search (``Lattice.find_all_mappings``, as ``fit``
   runs it) before a fit.

Both conditions follow from the matcher's code, not from a heuristic; the reduced structures they
inspect are the very ones the fit is then given (``skip_structure_reduction=True``), so a rejected
pair is one ``fit`` would have rejected. ``tests/test_dedup_prefilter.py`` checks this against
``fit`` on real crystals, and ``docs/dedup.md`` gives the check on every candidate pair of the real
33K set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pymatgen.core import Structure

SLACK = 1e-6
"""Relative margin on the successive-minima bound, so floating-point rounding never rejects a pair
the matcher's own arithmetic would accept."""


@dataclass(frozen=True, eq=False)
class ReducedCell:
    """A structure as ``StructureMatcher`` matches it: Niggli-reduced, then primitive (pymatgen)."""

    structure: Structure
    volume: float
    lengths: np.ndarray
    """sorted basis lengths at unit volume"""
    minima: np.ndarray
    """the lattice's three successive minima at unit volume"""


def reduced_cell(structure: Structure) -> ReducedCell:
    """The reduction ``StructureMatcher.fit`` applies with ``primitive_cell=True``, done once."""
    from pymatgen.core import Structure

    reduced = Structure.from_sites(structure).get_reduced_structure("niggli").get_primitive_structure()
    volume = float(reduced.volume)
    unit = volume ** (1 / 3)
    matrix = reduced.lattice.matrix
    return ReducedCell(
        reduced, volume, np.sort(np.linalg.norm(matrix, axis=1)) / unit, successive_minima(matrix) / unit
    )


def successive_minima(matrix: np.ndarray) -> np.ndarray:
    """Lengths λ1 ≤ λ2 ≤ λ3 of the shortest three linearly independent vectors of the lattice.

    Lattice points within the longest basis vector (which bounds λ3), by length: λ1 is the shortest,
    λ2 the shortest not parallel to it, λ3 the shortest out of their plane (exact integer tests on the
    points' lattice coordinates).
    """
    from pymatgen.core import Lattice

    radius = float(np.max(np.linalg.norm(matrix, axis=1))) * (1 + SLACK)
    frac, dist, _, _ = Lattice(matrix).get_points_in_sphere(
        np.zeros((1, 3)), np.zeros(3), radius, zip_results=False
    )
    order = np.argsort(dist, kind="stable")
    points, dist = np.rint(frac[order]).astype(np.int64), dist[order]
    first = int(np.argmax(points.any(axis=1)))
    second = int(np.argmax(np.cross(points[first], points).any(axis=1)))
    third = int(np.argmax(points @ np.cross(points[first], points[second]) != 0))
    return dist[[first, second, third]]


def rejection(rep: ReducedCell, member: ReducedCell, ltol: float, angle_tol: float) -> str | None:
    """Why ``fit(rep, member)`` cannot succeed (``"sites"`` or ``"lattice"``), or ``None`` when it may."""
    if len(rep.structure) != len(member.structure):
        return "sites"
    if np.any(rep.minima > (1 + ltol) * member.lengths * (1 + SLACK)):
        return "lattice"
    if not lattice_maps(rep, member, ltol, angle_tol):
        return "lattice"
    return None


def lattice_maps(rep: ReducedCell, member: ReducedCell, ltol: float, angle_tol: float) -> bool:
    """Whether the matcher's lattice search finds a basis of ``rep``'s lattice for ``member``'s: the
    volume scaling of ``StructureMatcher._preprocess`` and the search of ``_get_lattices``."""
    from pymatgen.core import Lattice

    ratio = (member.volume / rep.volume) ** (1 / 6)
    source = Lattice(rep.structure.lattice.matrix * ratio)
    target = Lattice(member.structure.lattice.matrix / ratio)
    return any(
        abs(abs(np.linalg.det(scale)) - 1) <= 0.5
        for _, _, scale in source.find_all_mappings(
            target, ltol=ltol, atol=angle_tol, skip_rotation_matrix=True
        )
    )
