"""Deduplication settings: matcher tolerances, the fingerprint tolerance and source priority."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DedupConfig:
    """``ltol``/``stol``/``angle_tol``: pymatgen ``StructureMatcher`` tolerances, the Materials Project
    settings (with ``primitive_cell`` and ``scale`` on). ``symprec``/``angle_tolerance``: spglib
    tolerances of the standardised cells (tiers 1 and 2). ``cell_ltol``/``cell_stol``/``cell_angle_tol``:
    tier 2's tolerances on the standardised cells, the same quantities as the matcher's (fractional
    lengths at equal volume, sites as a fraction of (volume per site)^(1/3), degrees), ten, ten and
    five times tighter, so a tier-2 match is one the matcher would make. ``priority``: sources in the
    order that decides which member of a group is canonical; unlisted sources follow in name order,
    then the lowest id wins."""

    ltol: float = 0.2
    stol: float = 0.3
    angle_tol: float = 5.0
    symprec: float = 0.1
    angle_tolerance: float = 5.0
    cell_ltol: float = 0.02
    cell_stol: float = 0.03
    cell_angle_tol: float = 1.0
    priority: tuple[str, ...] = ("mp", "oqmd")

    def to_dict(self) -> dict:
        return {**asdict(self), "priority": list(self.priority)}

    def rank(self, source: str, source_id: str) -> tuple:
        """Sort key: lower is preferred as canonical."""
        listed = self.priority.index(source) if source in self.priority else len(self.priority)
        return (listed, source, natural_key(source_id))


def natural_key(text: str) -> tuple:
    """``mp-9`` before ``mp-10``: digit runs compare as numbers."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part
    )
