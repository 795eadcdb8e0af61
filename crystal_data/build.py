"""Build a store from inputs (CIF files, staged upstream records): parallel, resumable, deterministic.

Inputs are cut into shards of ``shard_size`` in input order; a shard's content depends only on its
inputs and the settings, never on scheduling. A killed build re-run with the same inputs and
settings redoes only unfinished shards and ends byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from crystal_data.graphs.config import GraphConfig
from crystal_data.parallel import parallel_map
from crystal_data.process import Processed, Rejected, process_cif, process_staged
from crystal_data.progress import progress_bar
from crystal_data.readers.cif_folder import CifInput, scan_cif_folder
from crystal_data.staging import StagedInput
from crystal_data.store import layout
from crystal_data.store.atomic import atomic_write_json, remove
from crystal_data.store.manifest import finalize_store
from crystal_data.store.shard_writer import json_metadata, write_shard
from crystal_data.symmetry import SymmetryConfig

CHUNK_SIZE = 32
"""Inputs per task sent to a worker process."""

BuildInput = CifInput | StagedInput | Rejected
"""A CIF file, a staged upstream entry, or an entry rejected before the build (kept for the count)."""


class BuildConflict(RuntimeError):
    """The output folder holds something other than this build (or its unfinished self)."""


@dataclass(frozen=True)
class BuildSettings:
    """Everything besides the inputs that decides a store's content."""

    source: str = "cif"
    source_version: str = ""
    label_units: dict[str, str] = field(default_factory=dict)
    graph: GraphConfig = field(default_factory=GraphConfig)
    symmetry: SymmetryConfig = field(default_factory=SymmetryConfig)
    shard_size: int = 2048

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError("shard_size must be at least 1")

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "source_version": self.source_version,
            "label_units": dict(self.label_units),
            "graph": self.graph.to_dict(),
            "graph_hash": self.graph.hash,
            "symmetry": self.symmetry.to_dict(),
            "shard_size": self.shard_size,
        }


@dataclass(frozen=True)
class BuildReport:
    store: Path
    inputs: int
    records: int
    rejected: int
    shards: int
    shards_done_before: int
    seconds: float


def build_from_cif_folder(
    folder: str | Path,
    out: str | Path,
    settings: BuildSettings | None = None,
    *,
    layout_name: str = "auto",
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> BuildReport:
    """Scan ``folder`` (see :func:`scan_cif_folder`) and build a store at ``out``."""
    settings = settings or BuildSettings()
    scanned = scan_cif_folder(folder, layout_name, list(settings.label_units))
    return build_store(
        scanned.inputs,
        out,
        settings,
        workers=workers,
        overwrite=overwrite,
        progress=progress,
        build_info={"input_folder": str(scanned.folder), "layout": scanned.layout},
    )


def build_store(
    inputs: Sequence[BuildInput],
    out: str | Path,
    settings: BuildSettings,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    build_info: dict | None = None,
) -> BuildReport:
    """Process ``inputs`` into a store at ``out``; resume an unfinished build of the same plan."""
    start = time.perf_counter()
    plan = prepare_build(inputs, out, settings, overwrite=overwrite, build_info=build_info)
    if isinstance(plan, BuildReport):
        return plan
    pending = plan.pending()
    shards = {k: plan.shard(k) for k in pending}
    with progress_bar(progress, sum(len(s) for s in shards.values()), "crystals") as advance:
        for index, outcomes in _run(pending, shards, settings, workers, advance):
            _write(plan.store, index, outcomes, settings)
    return finish_build(plan, len(pending), time.perf_counter() - start)


@dataclass(frozen=True)
class BuildPlan:
    """A claimed, unfinished build: what the store will hold and how its inputs are cut into shards.
    Shards can be built in any order, anywhere that sees the store folder (:func:`build_shard`)."""

    store: Path
    settings: BuildSettings
    plan: dict
    inputs: Sequence[BuildInput]

    @property
    def num_shards(self) -> int:
        return max(1, -(-len(self.inputs) // self.settings.shard_size))

    @property
    def key(self) -> str:
        """A digest of the plan (inputs and settings): equal keys build equal stores."""
        return hashlib.sha256(json.dumps(self.plan, sort_keys=True).encode()).hexdigest()

    def shard(self, index: int) -> list[BuildInput]:
        size = self.settings.shard_size
        return list(self.inputs[index * size : (index + 1) * size])

    def pending(self) -> list[int]:
        return [k for k in range(self.num_shards) if not layout.records_path(self.store, k).exists()]


@dataclass(frozen=True)
class ShardReport:
    index: int
    records: int
    rejected: int
    skipped: bool
    """The shard was already committed (a resumed build)."""


def prepare_build(
    inputs: Sequence[BuildInput],
    out: str | Path,
    settings: BuildSettings,
    *,
    overwrite: bool = False,
    build_info: dict | None = None,
) -> BuildPlan | BuildReport:
    """Claim ``out`` for a build of ``inputs`` (or find it unfinished, to resume). Returns the report
    of the finished store instead when ``out`` already holds exactly this build."""
    store = Path(out)
    if overwrite:
        remove(store)
    plan = BuildPlan(store, settings, _plan(inputs, settings, build_info or {}), inputs)
    if _already_built(store, plan.plan):
        counts = json.loads((store / layout.MANIFEST).read_text())["counts"]
        n = plan.num_shards
        return BuildReport(store, counts["inputs"], counts["records"], counts["rejected"], n, n, 0.0)
    _claim(store, plan.plan)
    remove(layout.tmp_dir(store))  # leftovers of a killed run; nothing is writing yet
    return plan


def build_shard(
    store: str | Path, index: int, inputs: Sequence[BuildInput], settings: BuildSettings, *, workers: int = 1
) -> ShardReport:
    """Build and commit shard ``index`` of a prepared build from its ``inputs`` (``plan.shard(index)``);
    a shard already committed is left as it is. Safe to run in another process or on another host
    that sees ``store``."""
    store = Path(store)
    if layout.records_path(store, index).exists():
        return ShardReport(index, 0, 0, skipped=True)
    outcomes: list[Processed | Rejected] = []
    for _, shard_outcomes in _run([index], {index: list(inputs)}, settings, workers, lambda n: None):
        outcomes = shard_outcomes
    _write(store, index, outcomes, settings)
    rejected = sum(isinstance(o, Rejected) for o in outcomes)
    return ShardReport(index, len(outcomes) - rejected, rejected, skipped=False)


def finish_build(plan: BuildPlan, shards_built: int | None = None, seconds: float = 0.0) -> BuildReport:
    """Merge rejections and write the manifest once every shard is committed."""
    missing = plan.pending()
    if missing:
        raise RuntimeError(f"{plan.store}: shards {missing[:10]} are not built yet")
    counts = finalize_store(plan.store, plan.plan, plan.settings, plan.num_shards)
    built = plan.num_shards if shards_built is None else shards_built
    return BuildReport(
        plan.store,
        counts["inputs"],
        counts["records"],
        counts["rejected"],
        plan.num_shards,
        plan.num_shards - built,
        seconds,
    )


def _plan(inputs: Sequence[BuildInput], settings: BuildSettings, build_info: dict) -> dict:
    digest = hashlib.sha256()
    for item in inputs:
        line = json.dumps(item.plan_key(), sort_keys=True)
        digest.update(line.encode() + b"\n")
    return {
        "inputs_sha256": digest.hexdigest(),
        "num_inputs": len(inputs),
        "settings": settings.to_dict(),
        **build_info,
    }


def _already_built(store: Path, plan: dict) -> bool:
    manifest_path = store / layout.MANIFEST
    if not manifest_path.exists():
        return False
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("build", {}).get("plan") != plan:
        raise BuildConflict(
            f"{store} already holds a finished store built from other inputs or settings; "
            "use another output folder or --overwrite"
        )
    return True


def _claim(store: Path, plan: dict) -> None:
    plan_file = layout.plan_path(store)
    if plan_file.exists():
        if json.loads(plan_file.read_text()) != plan:
            raise BuildConflict(
                f"{store} holds an unfinished build of other inputs or settings; "
                "use another output folder or --overwrite"
            )
        return
    if store.exists() and any(store.iterdir()):
        raise BuildConflict(f"{store} exists, is not empty and is not a store; choose another output folder")
    atomic_write_json(plan_file, plan, layout.tmp_dir(store))


def _write(store: Path, index: int, outcomes: list[Processed | Rejected], settings: BuildSettings) -> None:
    processed = [o for o in outcomes if isinstance(o, Processed)]
    rejected = [o for o in outcomes if isinstance(o, Rejected)]
    parsers: dict[str, int] = {}
    for p in processed:
        parsers[p.parser] = parsers.get(p.parser, 0) + 1
    write_shard(
        store,
        index,
        processed,
        rejected,
        source=settings.source,
        label_units=settings.label_units,
        graph_config=settings.graph,
        metadata=json_metadata(symmetry=settings.symmetry.to_dict(), parsers=dict(sorted(parsers.items()))),
    )


def _process_task(
    task: tuple[int, int, list[BuildInput]], settings: BuildSettings
) -> list[Processed | Rejected]:
    _, _, items = task
    return [_process_one(item, settings) for item in items]


def _process_one(item: BuildInput, settings: BuildSettings) -> Processed | Rejected:
    if isinstance(item, Rejected):
        return item
    if isinstance(item, StagedInput):
        return process_staged(item, graph=settings.graph, symmetry=settings.symmetry)
    return process_cif(
        item,
        source=settings.source,
        source_version=settings.source_version,
        graph=settings.graph,
        symmetry=settings.symmetry,
    )


def _run(
    pending: list[int], shards: dict[int, list[BuildInput]], settings: BuildSettings, workers: int, advance
) -> Iterator[tuple[int, list[Processed | Rejected]]]:
    """Yield (shard index, outcomes in input order) as shards complete."""
    tasks = [
        (index, start, shards[index][start : start + CHUNK_SIZE])
        for index in pending
        for start in range(0, len(shards[index]), CHUNK_SIZE)
    ]
    remaining = {index: 0 for index in pending}
    for index, _, _ in tasks:
        remaining[index] += 1
    for index in pending:
        if remaining[index] == 0:  # only when there are no inputs at all
            yield index, []
    parts: dict[int, dict[int, list]] = {}
    for (index, start, _), chunk in parallel_map(
        partial(_process_task, settings=settings), tasks, workers=workers
    ):
        advance(len(chunk))
        parts.setdefault(index, {})[start] = chunk
        remaining[index] -= 1
        if remaining[index] == 0:
            done = parts.pop(index)
            yield index, [outcome for key in sorted(done) for outcome in done[key]]
