"""Leakage guard: flag corpus records that match a crystal of another store (e.g. a downstream
benchmark), so a pretraining corpus can exclude them.

Candidates are found exactly as in deduplication (same reduced formula and space group); a match is
an equal fingerprint, standardised cells equal within the tier-2 tolerances, or a ``StructureMatcher``
fit (after the same pre-filter) against any crystal of that bucket in the other store. Work units are
the corpus shards, run in parallel and resumable.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crystal_data.dedup.config import DedupConfig
from crystal_data.dedup.grouping import Candidate, Member, Tally, find_match, make_matcher
from crystal_data.parallel import run_units
from crystal_data.store import layout
from crystal_data.store.atomic import atomic_write, atomic_write_json, remove
from crystal_data.store.manifest import file_sha256, update_manifest

COLUMNS = [
    "uid",
    "source",
    "source_id",
    "formula",
    "spacegroup_number",
    "lattice",
    "atomic_numbers",
    "frac_coords",
]

LEAKAGE_SCHEMA = pa.schema(
    [
        pa.field("uid", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("matched_store", pa.string(), nullable=False),
        pa.field("matched_uid", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("rms_distance", pa.float64()),
    ]
)


@dataclass(frozen=True)
class ShardUnit:
    id: int
    records: str
    config: DedupConfig


@dataclass(frozen=True)
class LeakReport:
    checked: int
    candidates: int
    leaked: int
    fit_calls: int
    seconds: float


_REFERENCE: defaultdict[tuple, list[tuple[str, Candidate]]] = defaultdict(list)
"""Per worker: the reference crystals by candidate bucket, with the store each comes from; their
derived forms (standardised and reduced cells) are computed on first use and kept."""


def find_leaks(
    path: str | Path,
    against: list[str | Path],
    config: DedupConfig | None = None,
    *,
    workers: int = 1,
    progress: bool = True,
) -> LeakReport:
    """Write ``leakage.parquet`` listing every record of the store at ``path`` that matches a crystal
    of a store in ``against``, and a ``leakage`` manifest section."""
    start = time.perf_counter()
    config = config or DedupConfig()
    store = Path(path)
    manifest = json.loads((store / layout.MANIFEST).read_text())
    references = [Path(p).resolve() for p in against]
    identity = [{"path": str(p), "manifest_sha256": file_sha256(p / layout.MANIFEST)} for p in references]
    work = store / layout.LEAKAGE_DIR
    plan = {"store": manifest["build"]["plan"], "against": identity, "config": config.to_dict()}
    plan_file = work / "plan.json"
    if plan_file.exists() and json.loads(plan_file.read_text()) != plan:
        remove(work)
    if not plan_file.exists():
        atomic_write_json(plan_file, plan, work / "tmp")

    units = [
        ShardUnit(k, str(store / layout.RECORDS_DIR / f"{shard['name']}.parquet"), config)
        for k, shard in enumerate(manifest["shards"])
    ]
    parts = run_units(
        work / "parts",
        units,
        _check_shard,
        workers=workers,
        progress=progress,
        label="leakage",
        initializer=_load_references,
        initargs=(tuple(str(p) for p in references), config),
    )
    schemas = [pq.read_schema(p).metadata for p in parts]
    tables = [LEAKAGE_SCHEMA.empty_table()] + [pq.read_table(p).replace_schema_metadata(None) for p in parts]
    leaks = pa.concat_tables(tables).sort_by("uid")
    atomic_write(store / layout.LEAKAGE, lambda p: pq.write_table(leaks, p, compression="zstd"), work / "tmp")
    counts = {
        "checked": manifest["counts"]["records"],
        "candidates": sum(int(m[b"candidates"]) for m in schemas),
        "leaked": leaks.num_rows,
        "fit_calls": sum(int(m[b"fit_calls"]) for m in schemas),
    }
    section = {"leakage": {"against": identity, "config": config.to_dict(), "counts": counts}}
    update_manifest(store, section, [layout.LEAKAGE], work / "tmp")
    remove(work)
    return LeakReport(counts["checked"], counts["candidates"], counts["leaked"], counts["fit_calls"],
                      time.perf_counter() - start)  # fmt: skip


def _load_references(paths: tuple[str, ...], config: DedupConfig) -> None:
    """Worker initializer: every reference crystal, indexed by candidate bucket."""
    _REFERENCE.clear()
    for path in paths:
        manifest = json.loads((Path(path) / layout.MANIFEST).read_text())
        for shard in manifest["shards"]:
            table = pq.read_table(
                Path(path) / layout.RECORDS_DIR / f"{shard['name']}.parquet", columns=COLUMNS
            )
            for member, key in _members(table):
                _REFERENCE[key].append((path, Candidate(member, config)))


def _members(table: pa.Table):
    lattices = np.asarray(table.column("lattice").combine_chunks().flatten().flatten()).reshape(-1, 3, 3)
    columns = {name: table.column(name).to_pylist() for name in COLUMNS if name != "lattice"}
    for row in range(table.num_rows):
        member = Member(
            columns["uid"][row],
            columns["source"][row],
            columns["source_id"][row],
            lattices[row],
            np.asarray(columns["frac_coords"][row]),
            np.asarray(columns["atomic_numbers"][row]),
        )
        yield member, (columns["formula"][row], columns["spacegroup_number"][row])


def _check_shard(unit: ShardUnit) -> pa.Table:
    table = pq.read_table(unit.records, columns=COLUMNS)
    matcher = make_matcher(unit.config)
    rows, candidates = [], 0
    tally = Tally()
    for member, key in _members(table):
        reference = _REFERENCE.get(key)
        if not reference:
            continue
        candidates += 1
        candidate = Candidate(member, unit.config)
        store_of = {ref: store_path for store_path, ref in reference}
        refs = [ref for _, ref in reference]
        found = None
        if candidate.fingerprint is not None:
            found = next(
                ((ref, "fingerprint", None) for ref in refs if ref.fingerprint == candidate.fingerprint), None
            )
        found = found or find_match(candidate, refs, matcher, tally)
        if found is not None:
            ref, method, rms = found
            values = (
                member.uid,
                member.source,
                member.source_id,
                store_of[ref],
                ref.member.uid,
                method,
                rms,
            )
            rows.append(dict(zip(LEAKAGE_SCHEMA.names, values)))
    out = pa.Table.from_pylist(rows, schema=LEAKAGE_SCHEMA)
    metadata = {"candidates": str(candidates), "fit_calls": str(tally.fit_calls)}
    return out.replace_schema_metadata(metadata)
