"""The graph recipes' parameters; a config's hash names its graph folder in a store."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


class _Recipe:
    """What every graph config offers: a dict, its hash, and the way back."""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def hash(self) -> str:
        """12 hex digits of the sha256 of the canonical JSON of the parameters."""
        return _hash(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict):
        return cls(**data)


@dataclass(frozen=True)
class GraphConfig(_Recipe):
    """CrysGNN/CGCNN multigraph recipe: for every atom its ``max_neighbors`` nearest neighbours within
    ``cutoff`` Å, every periodic image a separate directed edge.

    ``tie_tolerance``: around one centre, distances sorted ascending form one shell while each is within
    this many Å of the previous one; within a shell, neighbours are ordered by index then image offset.
    ``min_distance``: two atoms closer than this (Å) reject the crystal as overlapping.
    """

    kind: str = "knn-multigraph"
    cutoff: float = 8.0
    max_neighbors: int = 12
    tie_tolerance: float = 1e-6
    min_distance: float = 0.5

    def __post_init__(self) -> None:
        if self.kind != "knn-multigraph":
            raise ValueError(f"unknown graph kind {self.kind!r}; known: 'knn-multigraph'")
        if not (self.cutoff > 0 and self.max_neighbors > 0 and 0 <= self.min_distance < self.cutoff):
            raise ValueError(f"invalid graph config {self}")


@dataclass(frozen=True)
class AlignnGraphConfig(_Recipe):
    """ALIGNN's undirected atom graph plus its line graph (docs/store.md, "ALIGNN graphs").

    Around every atom, all neighbours up to the distance of its ``max_neighbors``-th nearest one
    (ties within ``tie_tolerance`` Å included); the search starts at ``cutoff`` Å and grows as
    ALIGNN's does until every atom has that many. A bond found from either end is one undirected
    bond, stored once per direction.
    """

    kind: str = "alignn"
    cutoff: float = 8.0
    max_neighbors: int = 12
    tie_tolerance: float = 1e-6

    def __post_init__(self) -> None:
        if self.kind != "alignn":
            raise ValueError(f"not an ALIGNN graph kind: {self.kind!r}")
        if not (self.cutoff > 0 and self.max_neighbors > 0 and self.tie_tolerance >= 0):
            raise ValueError(f"invalid graph config {self}")


AnyGraphConfig = GraphConfig | AlignnGraphConfig
GRAPH_KINDS: dict[str, type[GraphConfig] | type[AlignnGraphConfig]] = {
    "knn-multigraph": GraphConfig,
    "alignn": AlignnGraphConfig,
}


def graph_config_from_dict(data: dict) -> AnyGraphConfig:
    """The config a manifest's ``graphs`` entry describes, by its ``kind``."""
    kind = data.get("kind")
    if kind not in GRAPH_KINDS:
        raise ValueError(f"unknown graph kind {kind!r}; known: {', '.join(map(repr, GRAPH_KINDS))}")
    return GRAPH_KINDS[kind].from_dict(data)


def _hash(config: dict) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]
