"""Tiers 1 and 2: spglib's standardised primitive cell, compared exactly (a fingerprint) or within tight
tolerances.

spglib standardises the primitive cell (idealising positions within ``symprec``, which absorbs noise
on special positions, and rotating the cell to a standard orientation). Tier 1 hashes its rounded
lattice metric and its sorted, rounded sites, with the origin on whichever atom of the rarest element
gives the smallest site list (spglib fixes the origin only up to the space group's equivalent
choices): origin shifts, permuted sites, supercells and other settings of the same lattice give the
same fingerprint. Tier 2 compares two standardised cells directly: volume-normalised lattice lengths
and angles, and every site paired with one of the same element under a common origin, all within
tolerances several times tighter than ``StructureMatcher``'s, so noise on free coordinates past the
fingerprint's rounding still merges without a fit. Neither tier decides a "no": cells that differ go
on to tier 3.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from functools import cache, cached_property

import numpy as np

PROBE_SITES = 8
"""Sites tried first for every candidate origin in tier 2, before all sites for the survivors."""


@dataclass(frozen=True, eq=False)
class StandardCell:
    """spglib's standardised primitive cell: ``lattice`` rows are the basis vectors (Å)."""

    lattice: np.ndarray
    frac_coords: np.ndarray
    numbers: np.ndarray
    _symmetries: dict[tuple[float, float], np.ndarray] = field(default_factory=dict, repr=False)

    def symmetries(self, ltol: float, angle_tol: float) -> np.ndarray:
        """``lattice_symmetries`` of this cell's lattice, computed once per tolerance."""
        if (ltol, angle_tol) not in self._symmetries:
            self._symmetries[ltol, angle_tol] = lattice_symmetries(self.lattice, ltol, angle_tol)
        return self._symmetries[ltol, angle_tol]

    @cached_property
    def volume(self) -> float:
        return abs(float(np.linalg.det(self.lattice)))

    @cached_property
    def lengths(self) -> np.ndarray:
        """Basis lengths at unit volume per cell (the matcher's ``scale=True`` compares shapes)."""
        return np.linalg.norm(self.lattice, axis=1) / self.volume ** (1 / 3)

    @cached_property
    def angles(self) -> np.ndarray:
        """(alpha, beta, gamma) in degrees."""
        a, b, c = self.lattice / np.linalg.norm(self.lattice, axis=1, keepdims=True)
        return np.degrees(np.arccos(np.clip([b @ c, a @ c, a @ b], -1.0, 1.0)))

    def fingerprint(self) -> str:
        """16 hex digits: equal for equal cells up to rounding (tier 1)."""
        lengths = np.round(np.linalg.norm(self.lattice, axis=1), 2)
        gram = np.round(self.lattice @ self.lattice.T, 1)
        digest = hashlib.sha256()
        for part in (lengths, gram, _canonical_sites(self.frac_coords, self.numbers)):
            digest.update(np.ascontiguousarray(part + 0.0).tobytes())  # + 0.0 folds -0.0 into 0.0
        return digest.hexdigest()[:16]


def standard_cell(
    lattice: np.ndarray,
    frac_coords: np.ndarray,
    atomic_numbers: np.ndarray,
    symprec: float,
    angle_tolerance: float,
) -> StandardCell | None:
    """spglib's standardised primitive cell, or ``None`` when spglib cannot standardise the cell."""
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
    return StandardCell(np.asarray(std_lattice, float), np.asarray(std_frac, float), std_numbers)


def structure_fingerprint(
    lattice: np.ndarray,
    frac_coords: np.ndarray,
    atomic_numbers: np.ndarray,
    symprec: float,
    angle_tolerance: float,
) -> str | None:
    """16 hex digits, or ``None`` when spglib cannot standardise the cell."""
    cell = standard_cell(lattice, frac_coords, atomic_numbers, symprec, angle_tolerance)
    return None if cell is None else cell.fingerprint()


def cell_distance(
    a: StandardCell, b: StandardCell, ltol: float, stol: float, angle_tol: float
) -> float | None:
    """Tier 2: the normalised RMS displacement between two standardised cells when they agree within
    the tolerances, else ``None``.

    ``b`` is tried in every basis ``M @ b.lattice`` for ``M`` among ``a``'s lattice symmetries
    (``StandardCell.symmetries``: the same crystal, re-described; spglib may standardise two copies of one
    crystal to bases related by such a symmetry, e.g. the two polarities of a polar axis). At equal
    volume, every basis length must agree with ``a``'s within the fraction ``ltol`` and every angle within
    ``angle_tol`` degrees; under a common origin (an atom of the rarest element of ``a`` put on each atom
    of that element in ``b`` in turn), every site of ``a`` must have its own site of ``b`` of the same
    element within ``stol`` × (volume per site)^(1/3), measured in both cells' metrics. The RMS (after
    removing the mean displacement) is normalised like ``StructureMatcher``'s.
    """
    n = len(a.numbers)
    if n != len(b.numbers) or not np.array_equal(np.sort(a.numbers), np.sort(b.numbers)):
        return None
    bases = a.symmetries(ltol, angle_tol)
    lengths, angles = _shape(bases @ b.lattice)
    close = np.all(np.abs(lengths / a.lengths - 1) <= ltol, axis=1) & np.all(
        np.abs(angles - a.angles) <= angle_tol, axis=1
    )
    scale = (a.volume / n) ** (1 / 3)
    species, counts = np.unique(a.numbers, return_counts=True)
    rarest = species[np.argmin(counts)]
    anchor = int(np.nonzero(a.numbers == rarest)[0][0])
    same = a.numbers[:, None] == b.numbers[None, :]
    probe = np.arange(min(n, PROBE_SITES))
    for basis in bases[close]:
        # the same crystal b in the basis ``basis @ b.lattice``: fractional coordinates times its inverse
        frac_b = b.frac_coords @ np.rint(np.linalg.inv(basis))
        # both metrics at a's volume: a displacement short in both is short whatever the strain between them
        metrics = (a.lattice, basis @ b.lattice * (a.volume / b.volume) ** (1 / 3))
        rms = _site_distance(a, frac_b, metrics, stol * scale, anchor, rarest, same, probe, b.numbers)
        if rms is not None:
            return rms / scale
    return None


def lattice_symmetries(lattice: np.ndarray, ltol: float, angle_tol: float) -> np.ndarray:
    """Integer matrices ``M`` (entries -1, 0, 1; determinant ±1) for which the basis ``M @ lattice``
    has the lengths and angles of ``lattice`` within the tolerances: the lattice's point symmetries,
    as basis changes, identity first."""
    bases = _unimodular()
    lengths, angles = _shape(bases @ lattice)
    own_lengths, own_angles = _shape(lattice[None])
    keep = np.all(np.abs(lengths / own_lengths - 1) <= ltol, axis=1) & np.all(
        np.abs(angles - own_angles) <= angle_tol, axis=1
    )
    return bases[keep]


@cache
def _unimodular() -> np.ndarray:
    """Every 3×3 matrix with entries -1, 0, 1 and determinant ±1, the identity first."""
    entries = np.array(np.meshgrid(*[[-1, 0, 1]] * 9, indexing="ij")).reshape(9, -1).T.reshape(-1, 3, 3)
    unimodular = entries[np.isclose(np.abs(np.linalg.det(entries)), 1)]
    identity = np.all(unimodular == np.eye(3, dtype=int), axis=(1, 2))
    return np.concatenate([unimodular[identity], unimodular[~identity]]).astype(float)


def _shape(lattices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Basis lengths at unit volume and angles (alpha, beta, gamma) in degrees, of (k, 3, 3) lattices."""
    norms = np.linalg.norm(lattices, axis=2)
    volume = np.abs(np.linalg.det(lattices))
    unit = lattices / norms[:, :, None]
    cosines = np.stack(
        [np.sum(unit[:, 1] * unit[:, 2], axis=1), np.sum(unit[:, 0] * unit[:, 2], axis=1),
         np.sum(unit[:, 0] * unit[:, 1], axis=1)], axis=1
    )  # fmt: skip
    return norms / volume[:, None] ** (1 / 3), np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))


def _site_distance(
    a: StandardCell,
    frac_b: np.ndarray,
    metrics: tuple[np.ndarray, ...],
    limit: float,
    anchor: int,
    rarest: int,
    same: np.ndarray,
    probe: np.ndarray,
    numbers_b: np.ndarray,
) -> float | None:
    """RMS displacement (Å, in a's metric) of the first common origin under which every site of a has
    its own site of b within ``limit``; ``None`` if there is none."""
    n = len(a.numbers)
    shifts = a.frac_coords[anchor] - frac_b[numbers_b == rarest]  # (origins, 3)
    # cheap probe: a few sites for every origin, then all sites for the origins that survive it
    near = _distances(a.frac_coords[probe], frac_b, shifts, metrics) <= limit
    alive = np.all(np.any(near & same[probe], axis=2), axis=1)
    for shift in shifts[alive]:
        dist = _distances(a.frac_coords, frac_b, shift[None], metrics)[0]
        dist[~same] = np.inf
        partner = np.argmin(dist, axis=1)
        if dist[np.arange(n), partner].max() > limit or len(np.unique(partner)) < n:
            continue
        delta = a.frac_coords - frac_b[partner] - shift
        delta -= np.rint(delta)
        cart = (delta - delta.mean(axis=0)) @ a.lattice
        return float(np.sqrt(np.mean(np.sum(cart**2, axis=1))))
    return None


def _distances(
    frac_a: np.ndarray, frac_b: np.ndarray, shifts: np.ndarray, metrics: tuple[np.ndarray, ...]
) -> np.ndarray:
    """(origins, len(frac_a), len(frac_b)) distances from each site of a to each shifted site of b:
    the larger over ``metrics``, of the displacement wrapped to the nearest fractional image (never
    shorter than the true periodic distance, so a short result is a true bound)."""
    delta = frac_a[None, :, None, :] - frac_b[None, None, :, :] - shifts[:, None, None, :]
    delta -= np.rint(delta)
    return np.max([np.linalg.norm(delta @ m, axis=-1) for m in metrics], axis=0)


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
