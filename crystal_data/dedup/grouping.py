"""Group the members of one candidate bucket (same reduced formula and space group).

Members are visited in priority order, so the first member of every group is its canonical one and
its representative. Each member joins the group of an equal fingerprint (tier 1) or the first
representative ``StructureMatcher`` fits (tier 3); otherwise it founds a group. Only representatives
are ever compared, never all pairs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from crystal_data.dedup.config import DedupConfig
from crystal_data.dedup.fingerprint import structure_fingerprint


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
    """``member_uid`` duplicates ``canonical_uid``; ``rms_distance`` is the matcher's normalised RMS
    displacement (``None`` for fingerprint matches)."""

    canonical_uid: str
    member_uid: str
    source: str
    source_id: str
    method: str
    rms_distance: float | None


@dataclass
class BucketResult:
    matches: list[Match] = field(default_factory=list)
    fit_calls: int = 0
    fingerprints: int = 0
    groups: int = 0


def make_matcher(config: DedupConfig):
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


def group_bucket(members: list[Member], config: DedupConfig, matcher=None) -> BucketResult:
    result = BucketResult()
    if len(members) < 2:
        result.groups = len(members)
        return result
    from crystal_data.convert import to_structure

    matcher = matcher or make_matcher(config)
    ordered = sorted(members, key=lambda m: config.rank(m.source, m.source_id))
    representatives: list[tuple[Member, object]] = []  # (member, pymatgen Structure)
    group_of_fingerprint: dict[str, Member] = {}
    for member in ordered:
        fingerprint = structure_fingerprint(
            member.lattice, member.frac_coords, member.atomic_numbers, config.symprec, config.angle_tolerance
        )
        result.fingerprints += 1
        if fingerprint is not None and fingerprint in group_of_fingerprint:
            canonical = group_of_fingerprint[fingerprint]
            result.matches.append(_match(canonical, member, "fingerprint", None))
            continue
        structure = to_structure(member)
        canonical, rms = None, None
        for representative, rep_structure in representatives:
            result.fit_calls += 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if matcher.fit(rep_structure, structure):
                    canonical = representative
                    rms = matcher.get_rms_dist(rep_structure, structure)[0]
                    break
        if canonical is None:
            representatives.append((member, structure))
            canonical = member
        else:
            result.matches.append(_match(canonical, member, "structure_matcher", float(rms)))
        if fingerprint is not None:
            group_of_fingerprint.setdefault(fingerprint, canonical)
    result.groups = len(representatives)
    return result


def _match(canonical: Member, member: Member, method: str, rms: float | None) -> Match:
    return Match(canonical.uid, member.uid, member.source, member.source_id, method, rms)
