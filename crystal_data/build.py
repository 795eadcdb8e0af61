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
    store = Path(out)
    if overwrite:
        remove(store)
    plan = _plan(inputs, settings, build_info or {})
    num_shards = max(1, -(-len(inputs) // settings.shard_size))
    if _already_built(store, plan):
        manifest = json.loads((store / layout.MANIFEST).read_text())
        counts = manifest["counts"]
        return BuildReport(
            store, counts["inputs"], counts["records"], counts["rejected"], num_shards, num_shards, 0.0
        )
    _claim(store, plan)
    remove(layout.tmp_dir(store))

    shards = [
        list(inputs[k * settings.shard_size : (k + 1) * settings.shard_size]) for k in range(num_shards)
    ]
    pending = [k for k in range(num_shards) if not layout.records_path(store, k).exists()]
    with progress_bar(progress, sum(len(shards[k]) for k in pending), "crystals") as advance:
        for index, outcomes in _run(pending, shards, settings, workers, advance):
            _write(store, index, outcomes, settings)
    counts = finalize_store(store, plan, settings, num_shards)
    return BuildReport(
        store,
        counts["inputs"],
        counts["records"],
        counts["rejected"],
        num_shards,
        num_shards - len(pending),
        time.perf_counter() - start,
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
    pending: list[int], shards: list[list[BuildInput]], settings: BuildSettings, workers: int, advance
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
