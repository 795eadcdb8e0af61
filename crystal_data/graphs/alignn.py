"""ALIGNN's atom graph and line graph (Choudhary & DeCost 2021), vectorised.

**Neighbours.** Around every atom, all neighbours (periodic images included, the atom's own images
too) up to the distance of its ``max_neighbors``-th nearest one, ties within ``tie_tolerance``
included, so an atom can have more than 12. ALIGNN searches within ``cutoff`` and, while any atom has
fewer than ``max_neighbors`` neighbours there, retries with ``max(a, b, c)`` (when larger) or twice the
radius; the neighbours kept do not depend on the radius once it is large enough, and this search
follows the same growth.

**Bonds.** A bond is an unordered pair of atoms with a relative image: atom ``j`` at image ``I`` seen
from ``i`` is the bond seen from ``j`` as ``i`` at ``-I``. It is a bond when either end keeps the other,
and is stored exactly once per direction. For ``i != j`` this is ALIGNN's canonised edge set; for an
atom bonded to its own image, ALIGNN keeps ``I`` and ``-I`` as two keys and so holds the bond twice per
direction, here it is held once.

**Edges** follow the knn graphs' convention: row 0 of ``edge_index`` the source, row 1 the target, and
``edge_image`` the lattice translation of the source. ``edge_vector`` is the displacement from the
source to the target, ``pos[target] - (pos[source] + edge_image @ lattice)`` (ALIGNN's ``r`` of the edge
source -> target), and ``edge_distance`` its length. Edges are sorted by (target, source, image), and
the reverse of every edge is an edge with the negated vector.

**Line graph.** One pair ``(e1, e2)`` for every edge ``e1 = a -> b`` and every edge ``e2 = b -> c``
leaving the atom ``e1`` enters, backtracking ``b -> a`` included (DGL's ``line_graph(shared=True)``),
so each atom ``b`` contributes ``indeg(b) * outdeg(b)`` pairs; ``line_index`` row 0 is ``e1``, row 1
``e2``, sorted by ``(e1, e2)``. ``line_cos = <-r_e1, r_e2> / (|r_e1| |r_e2|)``, clamped to [-1, 1]: the
cosine of the bond angle at ``b`` (1 for a backtracking pair).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crystal_data.graphs.config import AlignnGraphConfig
from crystal_data.graphs.neighbors import PBC, CrystalGraph

_MAX_SEARCHES = 40


@dataclass(frozen=True, eq=False)
class AlignnGraph(CrystalGraph):
    """One crystal's ALIGNN graphs; atom numbers are the record's site order."""

    edge_vector: np.ndarray
    """(E, 3) float32 displacement source -> target, Å."""
    line_index: np.ndarray
    """(2, T) int32 edge numbers: row 0 ``e1 = a -> b``, row 1 ``e2 = b -> c``."""
    line_cos: np.ndarray
    """(T,) float32 cosine of the angle at ``b``."""

    @property
    def num_pairs(self) -> int:
        return self.line_cos.shape[0]


def alignn_graph(lattice: np.ndarray, frac_coords: np.ndarray, config: AlignnGraphConfig) -> AlignnGraph:
    """Build the atom graph and line graph of one crystal (``lattice`` rows are the cell vectors).
    Raises ``ValueError`` when an image offset does not fit in int8."""
    lattice = np.ascontiguousarray(lattice, dtype=np.float64)
    cart = np.ascontiguousarray(np.asarray(frac_coords, dtype=np.float64) @ lattice)
    target, source, images = _bonds(_kept_neighbors(lattice, cart, config))
    if len(images) and np.abs(images).max() > np.iinfo(np.int8).max:
        raise ValueError("periodic image offsets beyond 127 cells")
    vectors = cart[target] - cart[source] - images @ lattice
    distances = np.linalg.norm(vectors, axis=1)
    line_index = _line_pairs(source, target, len(cart))
    e1, e2 = line_index
    cos = -np.einsum("ij,ij->i", vectors[e1], vectors[e2]) / (distances[e1] * distances[e2])
    return AlignnGraph(
        edge_index=np.stack([source, target]).astype(np.int32),
        edge_distance=distances.astype(np.float32),
        edge_image=images.astype(np.int8),
        edge_vector=vectors.astype(np.float32),
        line_index=line_index.astype(np.int32),
        line_cos=np.clip(cos, -1.0, 1.0).astype(np.float32),
    )


def _kept_neighbors(lattice: np.ndarray, cart: np.ndarray, config: AlignnGraphConfig):
    """(centre, neighbour, neighbour image) of every neighbour an atom keeps. Atoms whose
    ``max_neighbors``-th neighbour (and its ties) are not provably inside the search radius are
    searched again at the next radius."""
    num_atoms, k, tol = len(cart), config.max_neighbors, config.tie_tolerance
    pending = np.arange(num_atoms)
    radius = _first_radius(lattice, num_atoms, config)
    kept = []
    for _ in range(_MAX_SEARCHES):
        centre, neighbor, images, distances = _search(cart, pending, radius, lattice)
        order = np.lexsort((distances, centre))
        centre, neighbor, images, distances = centre[order], neighbor[order], images[order], distances[order]
        counts = np.bincount(centre, minlength=num_atoms)
        starts = np.cumsum(counts) - counts
        kth = np.full(num_atoms, np.inf)
        enough = counts >= k
        kth[enough] = distances[starts[enough] + k - 1]
        complete = kth + tol < radius
        keep = complete[centre] & (distances <= kth[centre] + tol)
        kept.append((centre[keep], neighbor[keep], images[keep]))
        pending = pending[~complete[pending]]
        if not len(pending):
            return tuple(np.concatenate(parts) for parts in zip(*kept))
        radius = _next_radius(radius, lattice, config)
    raise ValueError(f"atoms {pending[:5].tolist()} still lack {k} neighbours within {radius:.1f} Å")


def _first_radius(lattice: np.ndarray, num_atoms: int, config: AlignnGraphConfig) -> float:
    """About twice the radius holding ``max_neighbors`` atoms at the crystal's density (searching
    everything within 8 Å costs more than searching a few atoms twice), at most ``cutoff``."""
    volume_per_atom = abs(np.linalg.det(lattice)) / num_atoms
    holds_k = (3 * config.max_neighbors * volume_per_atom / (4 * np.pi)) ** (1 / 3)
    return float(min(config.cutoff, 1.25 * holds_k + 1.0))


def _next_radius(radius: float, lattice: np.ndarray, config: AlignnGraphConfig) -> float:
    if radius < config.cutoff:
        return config.cutoff
    longest = float(np.linalg.norm(lattice, axis=1).max())
    return longest if radius < longest else 2 * radius


def _search(cart: np.ndarray, centres: np.ndarray, radius: float, lattice: np.ndarray):
    """(centre, neighbour, image, distance) of every atom within ``radius`` of the ``centres``, a
    centre's own zero-offset self excluded."""
    from pymatgen.optimization.neighbors import find_points_in_spheres

    centre, neighbor, images, distances = find_points_in_spheres(
        cart, np.ascontiguousarray(cart[centres]), r=float(radius), pbc=PBC, lattice=lattice, tol=1e-8
    )
    centre = centres[centre]
    images = np.rint(images).astype(np.int64)
    keep = ~((centre == neighbor) & (images == 0).all(axis=1))
    return centre[keep], neighbor[keep], images[keep], distances[keep]


def _bonds(kept):
    """Directed edges (target, source, source image), both directions of every bond once, sorted."""
    centre, neighbor, images = kept
    # Canonical bond: (lo, hi, image of hi seen from lo); a self bond takes the image whose first
    # non-zero component is positive, so that I and -I are one bond.
    flip = neighbor < centre
    same = neighbor == centre
    first_nonzero = images[np.arange(len(images)), np.argmax(images != 0, axis=1)]
    flip |= same & (first_nonzero < 0)
    lo = np.where(flip, neighbor, centre)
    hi = np.where(flip, centre, neighbor)
    image = np.where(flip[:, None], -images, images)
    bonds = np.unique(np.column_stack([lo, hi, image]), axis=0)
    lo, hi, image = bonds[:, 0], bonds[:, 1], bonds[:, 2:]
    # hi (at image) -> lo, and lo (at -image) -> hi
    target = np.concatenate([lo, hi])
    source = np.concatenate([hi, lo])
    images = np.concatenate([image, -image])
    order = np.lexsort((images[:, 2], images[:, 1], images[:, 0], source, target))
    return target[order], source[order], images[order]


def _line_pairs(source: np.ndarray, target: np.ndarray, num_atoms: int) -> np.ndarray:
    """(2, T) pairs (e1, e2) with ``target[e1] == source[e2]``, sorted by (e1, e2); edges must be
    sorted by target."""
    out_degree = np.bincount(source, minlength=num_atoms)
    out_edges = np.argsort(source, kind="stable")  # grouped by source, ascending edge number within
    out_start = np.cumsum(out_degree) - out_degree
    per_e1 = out_degree[target]
    e1 = np.repeat(np.arange(len(target)), per_e1)
    first = np.cumsum(per_e1) - per_e1
    within = np.arange(len(e1)) - np.repeat(first, per_e1)
    e2 = out_edges[np.repeat(out_start[target], per_e1) + within]
    return np.stack([e1, e2])
