"""The dedup stage over a store: source pointers, candidate buckets, parallel resumable grouping.

1. A source's own duplicate pointers (OQMD ``duplicate_entry_id``, column ``source_duplicate_of``)
   are honoured first: such a record joins the group of the record it points to.
2. Every other record goes to a candidate bucket by (reduced formula, space group at the build's
   symprec); a bucket of one needs no work.
3. Multi-member buckets are packed into units of about ``UNIT_RECORDS`` records; their structures are
   partitioned once into per-unit Arrow files (one pass over the shards, so memory stays bounded by a
   shard plus a unit), and units run in parallel, each result written atomically: a killed run
   resumes with the units not yet done.

Writes ``duplicates.parquet`` (one row per non-canonical record) and a ``dedup`` manifest section.
A record is canonical exactly when it is not a member in that table.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from crystal_data.dedup.config import DedupConfig
from crystal_data.dedup.grouping import Match, Member, Tally, group_bucket, make_matcher
from crystal_data.parallel import run_units
from crystal_data.schema import make_uid
from crystal_data.store import layout
from crystal_data.store.atomic import atomic_write, atomic_write_json, remove
from crystal_data.store.manifest import library_versions, update_manifest

UNIT_RECORDS = 2000
META_COLUMNS = ["uid", "source", "source_id", "formula", "spacegroup_number", "source_duplicate_of"]
STRUCTURE_COLUMNS = ["uid", "source", "source_id", "lattice", "atomic_numbers", "frac_coords"]

DUPLICATES_SCHEMA = pa.schema(
    [
        pa.field("canonical_uid", pa.string(), nullable=False),
        pa.field("member_uid", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("rms_distance", pa.float64()),
    ]
)
"""``method``: ``source_duplicate`` (the source's own pointer), ``fingerprint`` (tier 1),
``standard_cell`` (tier 2) or ``structure_matcher`` (tier 3); tiers 2 and 3 with their normalised RMS
displacement."""


@dataclass(frozen=True)
class Unit:
    id: int
    buckets: tuple[tuple[str, int | None], ...]
    spill: str
    config: DedupConfig


@dataclass(frozen=True)
class DedupReport:
    records: int
    canonical: int
    duplicates: int
    by_method: dict[str, int]
    fit_calls: int
    seconds: float


def deduplicate_store(
    path: str | Path, config: DedupConfig | None = None, *, workers: int = 1, progress: bool = True
) -> DedupReport:
    """Find duplicates within a store and record them (see the module docstring)."""
    start = time.perf_counter()
    config = config or DedupConfig()
    store = Path(path)
    manifest = json.loads((store / layout.MANIFEST).read_text())
    work = store / layout.DEDUP_DIR
    plan = {
        "store": manifest["build"]["plan"],
        "records": manifest["counts"]["records"],
        "config": config.to_dict(),
    }
    _claim(work, plan)

    meta = _read_meta(store, manifest)
    pointer_root = _source_pointer_roots(meta)
    keys = list(zip(meta["formula"], meta["spacegroup_number"]))
    buckets: dict[tuple, list[int]] = defaultdict(list)
    for row, key in enumerate(keys):
        if meta["uid"][row] not in pointer_root:
            buckets[key].append(row)
    multi = {key: rows for key, rows in buckets.items() if len(rows) > 1}
    units = _pack_units(multi, work, config)
    _partition(store, manifest, meta, multi, units, work)
    parts = run_units(
        work / "parts", units, _run_unit, workers=workers, progress=progress, label="dedup buckets"
    )
    tables = [DUPLICATES_SCHEMA.empty_table()] + [
        pq.read_table(p).replace_schema_metadata(None) for p in parts
    ]
    matches = _add_source_duplicates(pa.concat_tables(tables), meta, pointer_root)
    matches = matches.sort_by([("canonical_uid", "ascending"), ("member_uid", "ascending")])
    tally = Tally()
    for p in parts:
        metadata = pq.read_schema(p).metadata
        tally.add(Tally(int(metadata[b"fit_calls"]), Counter(json.loads(metadata[b"skipped"]))))
    fit_calls = tally.fit_calls

    atomic_write(
        store / layout.DUPLICATES, lambda p: pq.write_table(matches, p, compression="zstd"), work / "tmp"
    )
    methods = matches.column("method").to_pylist()
    by_method = {m: methods.count(m) for m in sorted(set(methods))}
    formula_sizes = np.unique(np.array(meta["formula"], dtype=object), return_counts=True)[1]
    counts = {
        "records": len(meta["uid"]),
        "canonical": len(meta["uid"]) - matches.num_rows,
        "duplicates": matches.num_rows,
        "by_method": by_method,
        "buckets": len(buckets),
        "multi_member_buckets": len(multi),
        "fingerprints": sum(len(rows) for rows in multi.values()),
        "fit_calls": fit_calls,
        "fits_skipped_by_prefilter": {reason: tally.skipped[reason] for reason in sorted(tally.skipped)},
        "all_pairs_within_formula": int(sum(n * (n - 1) // 2 for n in formula_sizes)),
        "all_pairs_within_buckets": int(sum(len(r) * (len(r) - 1) // 2 for r in multi.values())),
    }
    section = {
        "dedup": {"config": config.to_dict(), "counts": counts, "pymatgen": library_versions()["pymatgen"]}
    }
    update_manifest(store, section, [layout.DUPLICATES], work / "tmp")
    remove(work)
    return DedupReport(
        counts["records"],
        counts["canonical"],
        counts["duplicates"],
        by_method,
        fit_calls,
        time.perf_counter() - start,
    )


def _claim(work: Path, plan: dict) -> None:
    plan_file = work / "plan.json"
    if plan_file.exists() and json.loads(plan_file.read_text()) != plan:
        remove(work)  # derived data of other settings: start over
    if not plan_file.exists():
        atomic_write_json(plan_file, plan, work / "tmp")


def _read_meta(store: Path, manifest: dict) -> dict[str, list]:
    tables = [
        pq.read_table(store / layout.RECORDS_DIR / f"{shard['name']}.parquet", columns=META_COLUMNS)
        for shard in manifest["shards"]
    ]
    table = pa.concat_tables(tables)
    return {name: table.column(name).to_pylist() for name in META_COLUMNS}


def _source_pointer_roots(meta: dict[str, list]) -> dict[str, str]:
    """uid -> uid of the record its source says it duplicates (followed to the end of the chain);
    only pointers to records present in the store count."""
    present = set(meta["uid"])
    pointer = {}
    for uid, source, source_id, target in zip(
        meta["uid"], meta["source"], meta["source_id"], meta["source_duplicate_of"]
    ):
        if target and target != source_id and make_uid(source, target) in present:
            pointer[uid] = make_uid(source, target)
    roots = {}
    for uid in pointer:
        seen, root = {uid}, pointer[uid]
        while root in pointer and root not in seen:
            seen.add(root)
            root = pointer[root]
        if root in seen:  # a cycle: the lowest uid of it is the root
            root = min(seen)
        if root != uid:
            roots[uid] = root
    return roots


def _pack_units(multi: dict[tuple, list[int]], work: Path, config: DedupConfig) -> list[Unit]:
    units, current, size = [], [], 0
    for key in sorted(multi, key=lambda k: (k[0], -1 if k[1] is None else k[1])):
        if current and size + len(multi[key]) > UNIT_RECORDS:
            units.append(current)
            current, size = [], 0
        current.append(key)
        size += len(multi[key])
    if current:
        units.append(current)
    return [
        Unit(k, tuple(keys), str(work / "spill" / f"unit-{k:05d}.arrow"), config)
        for k, keys in enumerate(units)
    ]


def _partition(store: Path, manifest: dict, meta: dict, multi: dict, units: list[Unit], work: Path) -> None:
    """One pass over the shards writes each unit's structures to its own Arrow file."""
    done_marker = work / "spill" / "complete"
    if done_marker.exists():
        return
    remove(work / "spill")
    (work / "spill").mkdir(parents=True)
    unit_of_row = {}
    for unit in units:
        for key in unit.buckets:
            for row in multi[key]:
                unit_of_row[row] = unit.id
    writers: dict[int, ipc.RecordBatchFileWriter] = {}
    offset = 0
    try:
        for shard in manifest["shards"]:
            table = pq.read_table(
                store / layout.RECORDS_DIR / f"{shard['name']}.parquet", columns=STRUCTURE_COLUMNS
            )
            rows = np.arange(offset, offset + table.num_rows)
            owner = np.array([unit_of_row.get(int(r), -1) for r in rows])
            for unit_id in np.unique(owner[owner >= 0]):
                part = table.take(np.nonzero(owner == unit_id)[0])
                keys = [(meta["formula"][r], meta["spacegroup_number"][r]) for r in rows[owner == unit_id]]
                part = part.append_column("bucket", pa.array([json.dumps(k) for k in keys]))
                if unit_id not in writers:
                    writers[unit_id] = ipc.new_file(units[unit_id].spill, part.schema)
                writers[unit_id].write_table(part)
            offset += table.num_rows
    finally:
        for writer in writers.values():
            writer.close()
    done_marker.write_text("")


def _run_unit(unit: Unit) -> pa.Table:
    """Group every bucket of one unit; the table's metadata carries the fit calls and the skipped
    pairs."""
    with ipc.open_file(unit.spill) as reader:
        table = reader.read_all()
    lattices = np.asarray(table.column("lattice").combine_chunks().flatten().flatten()).reshape(-1, 3, 3)
    numbers = table.column("atomic_numbers").to_pylist()
    coords = table.column("frac_coords").to_pylist()
    by_bucket: dict[str, list[Member]] = defaultdict(list)
    for row, (uid, source, source_id, bucket) in enumerate(
        zip(*(table.column(c).to_pylist() for c in ("uid", "source", "source_id", "bucket")))
    ):
        by_bucket[bucket].append(
            Member(uid, source, source_id, lattices[row], np.asarray(coords[row]), np.asarray(numbers[row]))
        )
    matcher = make_matcher(unit.config)
    matches: list[Match] = []
    tally = Tally()
    for bucket in sorted(by_bucket):
        result = group_bucket(by_bucket[bucket], unit.config, matcher)
        matches.extend(result.matches)
        tally.add(result.tally)
    out = _matches_table(matches)
    return out.replace_schema_metadata(
        {"fit_calls": str(tally.fit_calls), "skipped": json.dumps(dict(tally.skipped))}
    )


def _matches_table(matches: list[Match]) -> pa.Table:
    return pa.Table.from_pylist([m.__dict__ for m in matches], schema=DUPLICATES_SCHEMA)


def _add_source_duplicates(matches: pa.Table, meta: dict, pointer_root: dict[str, str]) -> pa.Table:
    """Records the source itself marks as duplicates join the final group of their root."""
    if not pointer_root:
        return matches
    canonical_of = dict(
        zip(matches.column("member_uid").to_pylist(), matches.column("canonical_uid").to_pylist())
    )
    index = {uid: row for row, uid in enumerate(meta["uid"])}
    extra = [
        Match(canonical_of.get(root, root), uid, meta["source"][index[uid]], meta["source_id"][index[uid]],
              "source_duplicate", None)
        for uid, root in sorted(pointer_root.items())
    ]  # fmt: skip
    return pa.concat_tables([matches, _matches_table(extra)])
