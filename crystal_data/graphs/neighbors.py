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

_PBC = np.ones(3, dtype=np.int64)


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
    """Build the multigraph of one crystal. Raises :class:`RejectedInput` for overlapping atoms."""
    from pymatgen.optimization.neighbors import find_points_in_spheres

    lattice = np.ascontiguousarray(lattice, dtype=np.float64)
    cart = np.ascontiguousarray(frac_coords @ lattice)
    target, source, images, distances = find_points_in_spheres(
        cart, cart, r=float(config.cutoff), pbc=_PBC, lattice=lattice, tol=1e-8
    )
    images = np.rint(images).astype(np.int64)
    is_self = (target == source) & (images == 0).all(axis=1)
    keep = ~is_self
    target, source, images, distances = target[keep], source[keep], images[keep], distances[keep]

    if len(distances) and distances.min() < config.min_distance:
        k = int(np.argmin(distances))
        raise RejectedInput(
            "overlapping_atoms",
            f"sites {int(target[k])} and {int(source[k])} are {distances[k]:.4f} Å apart "
            f"(minimum {config.min_distance} Å)",
        )

    by_distance = np.lexsort((distances, target))
    gaps = np.diff(distances[by_distance]) > config.tie_tolerance
    new_shell = np.concatenate([[True], gaps | (np.diff(target[by_distance]) != 0)])
    shell = np.empty(len(distances), dtype=np.int64)
    shell[by_distance] = np.cumsum(new_shell)
    order = np.lexsort((images[:, 2], images[:, 1], images[:, 0], source, shell, target))
    target, source, images, distances = target[order], source[order], images[order], distances[order]
    counts = np.bincount(target, minlength=len(frac_coords))
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(target)) - starts[target]
    keep = rank < config.max_neighbors
    target, source, images, distances = target[keep], source[keep], images[keep], distances[keep]

    if len(images) and np.abs(images).max() > np.iinfo(np.int8).max:
        raise RejectedInput("degenerate_lattice", "periodic image offsets exceed 127 cells within the cutoff")
    return CrystalGraph(
        edge_index=np.stack([source, target]).astype(np.int32),
        edge_distance=distances.astype(np.float32),
        edge_image=images.astype(np.int8),
    )
