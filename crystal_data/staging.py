"""Staged records: a source's raw pages turned into canonical records, once, before the build.

``normalize`` reads each source's landing zone through its parser and writes Arrow IPC parts of at
most ``PART_ROWS`` rows under ``RAW/<source>/staged/<digest>/``, where the digest covers the raw
content (every page and file sidecar, with its sha256) and the staging format. The build then takes
one :class:`StagedInput` per row, and its workers read rows straight from the parts, so memory stays
bounded by a few parts per process. Parser rejections are staged too (``reject_code``), so the build
accounts for every upstream entry: records + rejected = entries.

Re-running normalisation reuses the staged parts when the raw zone has not changed; it never
touches the network.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa

from crystal_data.progress import progress_bar
from crystal_data.record import CrystalRecord
from crystal_data.sources.base import RawRejection, Source
from crystal_data.sources.landing import RawZone
from crystal_data.store.atomic import atomic_write, atomic_write_json, remove
from crystal_data.store.manifest import file_sha256

STAGING_VERSION = 2
PART_ROWS = 4096


@dataclass(frozen=True)
class StagedInput:
    """One row of a staged part: a record to process, or an upstream entry already rejected."""

    part: str
    part_sha256: str
    row: int
    source_id: str
    rejected: bool = False
    """The parser already rejected this entry (the row holds the reason, not a record)."""

    def plan_key(self) -> list:
        """Identity in a build plan: content, not location."""
        return [self.part_sha256, self.row, self.source_id]


@dataclass(frozen=True)
class StagedSource:
    source: str
    inputs: list[StagedInput]
    reused: bool
    raw_sha256: str
    """:func:`zone_digest` of the raw zone it was staged from."""


def zone_digest(zone: RawZone) -> str:
    """sha256 over the fetch spec and every page and file sidecar of ``zone`` (order-stable)."""
    digest = hashlib.sha256(f"staging-v{STAGING_VERSION}\n".encode())
    digest.update((zone.dir / "fetch.json").read_bytes())
    for sidecar in sorted(zone.dir.glob("pages/*.meta.json")) + sorted(zone.dir.glob("files/*.meta.json")):
        digest.update(sidecar.name.encode() + b"\n" + sidecar.read_bytes())
    return digest.hexdigest()


def stage_source(source: Source, zone: RawZone, progress: bool = True) -> StagedSource:
    """Stage ``zone`` through ``source``'s parser (or reuse an identical earlier staging)."""
    digest = zone_digest(zone)
    folder = zone.dir / "staged" / digest
    done = folder / "done.json"
    if done.exists():
        parts = json.loads(done.read_text())["parts"]
        return StagedSource(source.name, _inputs(folder, parts), reused=True, raw_sha256=digest)
    for stale in (zone.dir / "staged").glob("*"):
        if stale != folder:
            remove(stale)
    remove(folder)
    parts: list[dict] = []
    batch: list[CrystalRecord | RawRejection] = []
    units = dict(source.label_units)
    with progress_bar(progress, None, f"stage {source.name}") as advance:
        for item in source.records(zone):
            batch.append(item)
            if len(batch) == PART_ROWS:
                parts.append(_write_part(folder, len(parts), batch, source.record_source, units, zone.tmp))
                advance(len(batch))
                batch = []
        if batch or not parts:
            parts.append(_write_part(folder, len(parts), batch, source.record_source, units, zone.tmp))
            advance(len(batch))
    atomic_write_json(done, {"source": source.name, "parts": parts}, zone.tmp)
    return StagedSource(source.name, _inputs(folder, parts), reused=False, raw_sha256=digest)


def _inputs(folder: Path, parts: list[dict]) -> list[StagedInput]:
    inputs = []
    for part in parts:
        path = str(folder / part["name"])
        ids, rejected = part["source_ids"], set(part["rejected_rows"])
        inputs.extend(
            StagedInput(path, part["sha256"], row, sid, row in rejected) for row, sid in enumerate(ids)
        )
    return inputs


def _write_part(
    folder: Path,
    index: int,
    items: list[CrystalRecord | RawRejection],
    record_source: str,
    label_units: dict[str, str],
    tmp: Path,
) -> dict:
    table = staged_table(items, record_source, label_units)
    path = folder / f"part-{index:05d}.arrow"

    def write(target: Path) -> None:
        with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)

    atomic_write(path, write, tmp)
    ids = table.column("source_id").to_pylist()
    rejected = [k for k, code in enumerate(table.column("reject_code").to_pylist()) if code is not None]
    return {
        "name": path.name,
        "sha256": file_sha256(path),
        "rows": table.num_rows,
        "source_ids": ids,
        "rejected_rows": rejected,
    }


def staged_table(
    items: Iterable[CrystalRecord | RawRejection], record_source: str, label_units: dict[str, str]
) -> pa.Table:
    items = list(items)
    records = [r if isinstance(r, CrystalRecord) else None for r in items]
    rejections = [r if isinstance(r, RawRejection) else None for r in items]
    f64 = pa.list_(pa.float64())
    columns = {
        "source": pa.array([r.source if r else record_source for r in records], pa.string()),
        "source_id": pa.array([item.source_id for item in items], pa.string()),
        "source_version": pa.array([r.source_version if r else None for r in records], pa.string()),
        "origin": pa.array([(r or x).origin for r, x in zip(records, rejections)], pa.string()),
        "source_duplicate_of": pa.array([r.source_duplicate_of if r else None for r in records], pa.string()),
        "lattice": pa.array([r.lattice.ravel().tolist() if r else None for r in records], f64),
        "atomic_numbers": pa.array(
            [r.atomic_numbers.tolist() if r else None for r in records], pa.list_(pa.int16())
        ),
        "frac_coords": pa.array([r.frac_coords.ravel().tolist() if r else None for r in records], f64),
        "reject_code": pa.array([x.code if x else None for x in rejections], pa.string()),
        "reject_reason": pa.array([x.reason if x else None for x in rejections], pa.string()),
    }
    for name in label_units:
        values = [r.labels.get(name) if r else None for r in records]
        columns[f"label:{name}"] = pa.array(values, pa.float64())
    return pa.table(columns)


@lru_cache(maxsize=4)
def _read_part(path: str) -> pa.Table:
    with pa.memory_map(path) as source:
        return pa.ipc.open_file(source).read_all()


def read_staged(item: StagedInput) -> CrystalRecord | RawRejection:
    """The record (or rejection) of one staged row."""
    row = _read_part(item.part).slice(item.row, 1).to_pylist()[0]
    if row["source_id"] != item.source_id:
        raise RuntimeError(f"{item.part} row {item.row} holds {row['source_id']!r}, not {item.source_id!r}")
    if row["reject_code"] is not None:
        return RawRejection(
            row["source_id"], row["reject_code"], row["reject_reason"], row["origin"], row["source"]
        )
    labels = {key[6:]: value for key, value in row.items() if key.startswith("label:")}
    return CrystalRecord(
        source=row["source"],
        source_id=row["source_id"],
        lattice=np.array(row["lattice"]).reshape(3, 3),
        atomic_numbers=np.array(row["atomic_numbers"]),
        frac_coords=np.array(row["frac_coords"]).reshape(-1, 3),
        source_version=row["source_version"],
        origin=row["origin"],
        labels=labels,
        source_duplicate_of=row["source_duplicate_of"],
    )
