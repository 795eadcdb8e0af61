"""Group the members of one candidate bucket (same reduced formula and space group).

Members are visited in priority order, so the first member of every group is its canonical one and
its representative. Each member joins, in this order,

1. the group of an equal fingerprint (tier 1),
2. the group of the first representative whose standardised cell agrees with its own within the tight
   tier-2 tolerances (``cell_distance``),
3. the group of the first representative, in priority order, that ``StructureMatcher`` fits (tier 3);
   pairs that fail a necessary condition of the fit (``prefilter.rejection``) are skipped without a
   call,

or founds a group. Only representatives are ever compared, never all pairs.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from crystal_data.dedup.config import DedupConfig
from crystal_data.dedup.fingerprint import StandardCell, cell_distance, standard_cell
from crystal_data.dedup.prefilter import ReducedCell, reduced_cell, rejection

if TYPE_CHECKING:
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure


@dataclass(frozen=True, eq=False)
class Member:
    uid: str
    source: str
    source_id: str
    lattice: np.ndarray
    frac_coords: np.ndarray
    atomic_numbers: np.ndarray


@dataclass(frozen=True)
class Match:
    """``member_uid`` duplicates ``canonical_uid``; ``rms_distance`` is the normalised RMS displacement:
    the matcher's for ``structure_matcher``, the standardised cells' for ``standard_cell``, ``None``
    for ``fingerprint``."""

    canonical_uid: str
    member_uid: str
    source: str
    source_id: str
    method: str
    rms_distance: float | None


@dataclass
class Tally:
    """Work done: fit calls, and the pairs the pre-filter skipped, by reason (``sites``, ``lattice``)."""

    fit_calls: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        self.fit_calls += other.fit_calls
        self.skipped.update(other.skipped)


@dataclass
class BucketResult:
    matches: list[Match] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    fingerprints: int = 0
    groups: int = 0

    @property
    def fit_calls(self) -> int:
        return self.tally.fit_calls


class Candidate:
    """A member with the forms the tiers compare, each computed once and only when first needed."""

    def __init__(self, member: Member, config: DedupConfig):
        self.member = member
        self.config = config

    @cached_property
    def cell(self) -> StandardCell | None:
        m = self.member
        return standard_cell(
            m.lattice, m.frac_coords, m.atomic_numbers, self.config.symprec, self.config.angle_tolerance
        )

    @cached_property
    def fingerprint(self) -> str | None:
        return None if self.cell is None else self.cell.fingerprint()

    @cached_property
    def structure(self) -> Structure:
        from crystal_data.convert import to_structure

        return to_structure(self.member)

    @cached_property
    def reduced(self) -> ReducedCell:
        return reduced_cell(self.structure)


def make_matcher(config: DedupConfig) -> StructureMatcher:
    from pymatgen.analysis.structure_matcher import ElementComparator, StructureMatcher

    return StructureMatcher(
        ltol=config.ltol,
        stol=config.stol,
        angle_tol=config.angle_tol,
        primitive_cell=True,
        scale=True,
        attempt_supercell=False,
        comparator=ElementComparator(),
    )


def find_match(
    candidate: Candidate,
    representatives: Sequence[Candidate],
    matcher: StructureMatcher,
    tally: Tally,
) -> tuple[Candidate, str, float] | None:
    """Tiers 2 and 3: the representative ``candidate`` duplicates, the method and the RMS displacement,
    or ``None``. Tier 2 is tried against every representative before any fit, so a near-identical
    copy never costs one."""
    config = candidate.config
    if candidate.cell is not None:
        for rep in representatives:
            if rep.cell is None:
                continue
            rms = cell_distance(
                rep.cell, candidate.cell, config.cell_ltol, config.cell_stol, config.cell_angle_tol
            )
            if rms is not None:
                return rep, "standard_cell", rms
    for rep in representatives:
        reason = rejection(rep.reduced, candidate.reduced, config.ltol, config.angle_tol)
        if reason is not None:
            tally.skipped[reason] += 1
            continue
        tally.fit_calls += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the structures fit would reduce, already reduced: the ones the pre-filter inspected
            if matcher.fit(rep.reduced.structure, candidate.reduced.structure, skip_structure_reduction=True):
                rms = matcher.get_rms_dist(rep.structure, candidate.structure)[0]
                return rep, "structure_matcher", float(rms)
    return None


def group_bucket(
    members: list[Member], config: DedupConfig, matcher: StructureMatcher | None = None
) -> BucketResult:
    """Group one bucket's members (see the module docstring)."""
    result = BucketResult()
    if len(members) < 2:
        result.groups = len(members)
        return result
    matcher = matcher or make_matcher(config)
    ordered = sorted(members, key=lambda m: config.rank(m.source, m.source_id))
    representatives: list[Candidate] = []
    group_of_fingerprint: dict[str, Member] = {}
    for member in ordered:
        candidate = Candidate(member, config)
        fingerprint = candidate.fingerprint
        result.fingerprints += 1
        if fingerprint is not None and fingerprint in group_of_fingerprint:
            canonical = group_of_fingerprint[fingerprint]
            result.matches.append(_match(canonical, member, "fingerprint", None))
            continue
        found = find_match(candidate, representatives, matcher, result.tally)
        if found is None:
            representatives.append(candidate)
            canonical = member
        else:
            rep, method, rms = found
            canonical = rep.member
            result.matches.append(_match(canonical, member, method, rms))
        if fingerprint is not None:
            group_of_fingerprint.setdefault(fingerprint, canonical)
    result.groups = len(representatives)
    return result


def _match(canonical: Member, member: Member, method: str, rms: float | None) -> Match:
    return Match(canonical.uid, member.uid, member.source, member.source_id, method, rms)
