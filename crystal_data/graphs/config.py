"""The graph recipe's parameters; their hash names the graph folder in a store."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GraphConfig:
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

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def hash(self) -> str:
        """12 hex digits of the sha256 of the canonical JSON of the parameters."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: dict) -> GraphConfig:
        return cls(**data)
