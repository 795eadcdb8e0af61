"""The k-nearest-neighbour periodic multigraph, vectorised.

Edges follow PyTorch Geometric's convention: ``edge_index[0]`` is the neighbour (source, j),
``edge_index[1]`` the centre atom that aggregates (target, i); the source sits at
``frac_coords[j] + edge_image`` and ``edge_distance = |(frac[j] + image - frac[i]) @ lattice|``.
Edges are grouped by target in ascending order, then sorted by (shell, source index, image offset),
where a shell is a run of distances each within ``tie_tolerance`` of the previous one: that order
decides which members of a shell cut by the ``max_neighbors`` limit are kept. Shells come from gaps,
not from rounding, so equal distances printed with few digits never straddle a rounding boundary.
An atom with fewer neighbours within the cutoff simply has fewer edges (no padding); an atom with none
has none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crystal_data.errors import RejectedInput
from crystal_data.graphs.config import GraphConfig

PBC = np.ones(3, dtype=np.int64)  # periodic along all three cell vectors (find_points_in_spheres)


@dataclass(frozen=True, eq=False)
class CrystalGraph:
    edge_index: np.ndarray
    """(2, E) int32: row 0 source (neighbour), row 1 target (centre)."""
    edge_distance: np.ndarray
    """(E,) float32, Å."""
    edge_image: np.ndarray
    """(E, 3) int8 lattice translation of the source."""

    @property
    def num_edges(self) -> int:
        return self.edge_distance.shape[0]


def nearest_neighbor_graph(lattice: np.ndarray, frac_coords: np.ndarray, config: GraphConfig) -> CrystalGraph:
    """Build the multigraph of one crystal. Raises :class:`RejectedInput` for overlapping atoms.

    The search starts at a radius that holds about twice ``max_neighbors`` atoms at the crystal's
    density (sorting every pair within 8 Å costs 5x more than finding them); atoms whose
    neighbourhood is not provably complete at that radius (fewer neighbours, or a cut shell reaching
    its edge) are searched again at the full cutoff, so the result equals a full-cutoff search."""
    lattice = np.ascontiguousarray(lattice, dtype=np.float64)
    cart = np.ascontiguousarray(frac_coords @ lattice)
    num_atoms = len(cart)
    radius = _first_radius(lattice, num_atoms, config)
    pairs = _pairs(cart, cart, np.arange(num_atoms), radius, lattice)
    _check_overlap(pairs, config)
    ordered, rank, shell_end = _order(pairs, num_atoms, config)
    if radius < config.cutoff:
        kth = rank == config.max_neighbors - 1
        complete = np.zeros(num_atoms, dtype=bool)
        complete[ordered[0][kth]] = shell_end[kth] + config.tie_tolerance < radius
        if not complete.all():
            redo = np.nonzero(~complete)[0]
            extra = _pairs(cart[redo], cart, redo, config.cutoff, lattice)
            kept = complete[pairs[0]]
            pairs = tuple(np.concatenate([part[kept], more]) for part, more in zip(pairs, extra))
            ordered, rank, _ = _order(pairs, num_atoms, config)
    keep = rank < config.max_neighbors
    target, source, images, distances = (part[keep] for part in ordered)
    if len(images) and np.abs(images).max() > np.iinfo(np.int8).max:
        raise RejectedInput("degenerate_lattice", "periodic image offsets exceed 127 cells within the cutoff")
    return CrystalGraph(
        edge_index=np.stack([source, target]).astype(np.int32),
        edge_distance=distances.astype(np.float32),
        edge_image=images.astype(np.int8),
    )


def _first_radius(lattice: np.ndarray, num_atoms: int, config: GraphConfig) -> float:
    volume_per_atom = abs(np.linalg.det(lattice)) / num_atoms
    holds_k = (3 * config.max_neighbors * volume_per_atom / (4 * np.pi)) ** (1 / 3)
    return float(min(config.cutoff, 1.25 * holds_k + 1.0))


def _pairs(
    centres: np.ndarray, cart: np.ndarray, centre_index: np.ndarray, radius: float, lattice: np.ndarray
):
    """(target, source, image, distance) of every pair within ``radius``, an atom's zero-offset self
    excluded; ``target`` is mapped through ``centre_index``."""
    from pymatgen.optimization.neighbors import find_points_in_spheres

    target, source, images, distances = find_points_in_spheres(
        cart, np.ascontiguousarray(centres), r=float(radius), pbc=PBC, lattice=lattice, tol=1e-8
    )
    target = centre_index[target]
    images = np.rint(images).astype(np.int64)
    keep = ~((target == source) & (images == 0).all(axis=1))
    return target[keep], source[keep], images[keep], distances[keep]


def _check_overlap(pairs, config: GraphConfig) -> None:
    target, source, _, distances = pairs
    if len(distances) and distances.min() < config.min_distance:
        k = int(np.argmin(distances))
        raise RejectedInput(
            "overlapping_atoms",
            f"sites {int(target[k])} and {int(source[k])} are {distances[k]:.4f} Å apart "
            f"(minimum {config.min_distance} Å)",
        )


def _order(pairs, num_atoms: int, config: GraphConfig):
    """Pairs in edge order, each pair's rank around its target, and the last distance of its shell."""
    target, source, images, distances = pairs
    by_distance = np.lexsort((distances, target))
    sorted_distances = distances[by_distance]
    new_shell = np.ones(len(distances), dtype=bool)
    new_shell[1:] = (np.diff(sorted_distances) > config.tie_tolerance) | (np.diff(target[by_distance]) != 0)
    shell_id = np.cumsum(new_shell) - 1
    shell_last = np.append(np.nonzero(new_shell)[0][1:] - 1, len(distances) - 1)
    shell = np.empty(len(distances), dtype=np.int64)
    shell[by_distance] = shell_id
    order = np.lexsort((images[:, 2], images[:, 1], images[:, 0], source, shell, target))
    ordered = tuple(part[order] for part in pairs)
    counts = np.bincount(ordered[0], minlength=num_atoms)
    rank = np.arange(len(order)) - (np.cumsum(counts) - counts)[ordered[0]]
    shell_end = sorted_distances[shell_last][shell[order]] if len(order) else np.zeros(0)
    return ordered, rank, shell_end
