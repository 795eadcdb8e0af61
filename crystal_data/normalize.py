"""Raw landing zone -> store: stage every fetched source through its parser, then build.

Sources are taken in the order given (default: the landing folder's sources in name order). A uid
that an earlier source already gave (the same OQMD entry through REST and OPTIMADE) is kept once and
the later copy is rejected as ``duplicate_uid``, so records + rejected = upstream entries still holds.
Entries the parser rejected keep their own reason and claim no uid.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crystal_data.build import BuildInput, BuildReport, BuildSettings, build_store
from crystal_data.graphs.config import GraphConfig
from crystal_data.process import Rejected
from crystal_data.schema import make_uid
from crystal_data.sources import get_source
from crystal_data.sources.landing import RawZone, raw_sources
from crystal_data.staging import stage_source
from crystal_data.symmetry import SymmetryConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StagedBuild:
    """Everything a build of the landing folder needs: inputs in order, settings, provenance."""

    inputs: list[BuildInput]
    settings: BuildSettings
    build_info: dict


def normalize(
    raw: str | Path,
    out: str | Path,
    *,
    sources: Sequence[str] | None = None,
    graph: GraphConfig | None = None,
    symmetry: SymmetryConfig | None = None,
    shard_size: int = 2048,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> BuildReport:
    """Build the store ``out`` from the fetched sources in the landing folder ``raw``."""
    staged = stage_raw(
        raw, sources=sources, graph=graph, symmetry=symmetry, shard_size=shard_size, progress=progress
    )
    return build_store(
        staged.inputs,
        out,
        staged.settings,
        workers=workers,
        overwrite=overwrite,
        progress=progress,
        build_info=staged.build_info,
    )


def stage_raw(
    raw: str | Path,
    *,
    sources: Sequence[str] | None = None,
    graph: GraphConfig | None = None,
    symmetry: SymmetryConfig | None = None,
    shard_size: int = 2048,
    progress: bool = True,
) -> StagedBuild:
    """Stage every source of the landing folder ``raw`` (see the module docstring)."""
    names = list(sources) if sources else raw_sources(raw)
    if not names:
        raise FileNotFoundError(f"{raw}: no fetched source here; run `crystal-data fetch SOURCE --raw {raw}`")
    inputs: list[BuildInput] = []
    label_units: dict[str, str] = {}
    given_by: dict[str, str] = {}
    info: dict[str, dict] = {}
    for name in names:
        source, zone = get_source(name), RawZone(raw, name)
        if not zone.exists():
            raise FileNotFoundError(f"{zone.dir}: source {name!r} was never fetched into {raw}")
        if zone.completion() is None:
            log.warning("%s: the fetch is not complete; normalising the pages fetched so far", name)
        for label, unit in source.label_units.items():
            if label_units.setdefault(label, unit) != unit:
                raise ValueError(f"label {label!r} has unit {label_units[label]}, but {unit} in {name}")
        staged = stage_source(source, zone, progress)
        for item in staged.inputs:
            uid = make_uid(source.record_source, item.source_id)
            if item.rejected:  # already a rejection with its own reason; it claims no uid
                inputs.append(item)
            elif uid in given_by:
                where = f"{item.part}#{item.row}"
                reason = f"{uid} was already given by {given_by[uid]}"
                inputs.append(Rejected(where, item.source_id, "duplicate_uid", reason, source.record_source))
            else:
                given_by[uid] = name
                inputs.append(item)
        info[name] = {
            "fetch": zone.spec(),
            "complete": zone.completion() is not None,
            "raw_sha256": staged.raw_sha256,
            "entries": len(staged.inputs),
        }
    settings = BuildSettings(
        source="+".join(names),
        label_units=label_units,
        graph=graph or GraphConfig(),
        symmetry=symmetry or SymmetryConfig(),
        shard_size=shard_size,
    )
    return StagedBuild(inputs, settings, {"raw": {"folder": str(Path(raw).resolve()), "sources": info}})
