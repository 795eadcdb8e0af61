"""Splits stored as data inside a store, listed in its manifest with their sha256.

::

    STORE/splits/entries.parquet              named datasets: every upstream entry in file order
                                              (entry, uid, record_row, one column per target)
    STORE/splits/<target>/<scheme>.parquet    one split: uid, split, entry, position

A split is drawn once, from the entries that have the target in upstream order (``entries.parquet``
when the store has one, else the store's records in order), written atomically, and added to the
manifest (``splits`` section and ``files``). From then on it is read, never drawn again, and its
sha256 is checked on every read. ``position`` is the id the recipe drew (the index among the entries
with the target, what ALIGNN's id lists hold); ``entry`` is the index among all upstream entries.

Why upstream order rather than the store's records: the paper split is defined on the file as
published. An entry our build rejects keeps its place in the split (so every other entry keeps its
split) and is reported as missing when loaded, instead of shifting every later id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crystal_data.datasets.cache import locked
from crystal_data.splits import SPLIT_NAMES, SplitScheme
from crystal_data.store import layout
from crystal_data.store.atomic import atomic_write, remove
from crystal_data.store.manifest import file_sha256, update_manifest

log = logging.getLogger(__name__)

SPLITS_DIR = "splits"
ENTRIES = f"{SPLITS_DIR}/entries.parquet"
NO_TARGET = "__all__"
"""The folder of splits drawn over every entry (stores without labels)."""
_WORK = ".splits"
"""Work area while writing; removed when done (``verify`` reports a leftover one)."""


class CorruptSplit(RuntimeError):
    """A stored split whose bytes no longer match the manifest, or that names other records."""


def split_file(target: str | None, scheme: SplitScheme) -> str:
    """The split's path relative to the store."""
    if target == NO_TARGET:
        raise ValueError(f"{NO_TARGET!r} is reserved; it cannot be a target name")
    return f"{SPLITS_DIR}/{target or NO_TARGET}/{scheme.name}.parquet"


def _manifest(store: Path) -> dict:
    return json.loads((store / layout.MANIFEST).read_text())


def _record_uids(store: Path, manifest: dict, columns: Sequence[str] = ()) -> pa.Table:
    tables = [
        pq.read_table(store / layout.RECORDS_DIR / f"{shard['name']}.parquet", columns=["uid", *columns])
        for shard in manifest["shards"]
    ]
    return pa.concat_tables(tables)


def write_entries(store: Path, uids: Sequence[str | None], labels: dict[str, Sequence[float | None]]) -> None:
    """Store the upstream entries (``uids`` in file order, ``None`` for an entry without an id, and
    each target's values) as ``splits/entries.parquet``, with the store row each became (the first
    entry of a uid; later copies and rejected entries have none)."""
    records = _record_uids(store, _manifest(store)).column("uid").to_pylist()
    row_of = {uid: row for row, uid in enumerate(records)}
    seen: set[str] = set()
    record_row: list[int | None] = []
    for uid in uids:
        record_row.append(row_of.get(uid) if uid is not None and uid not in seen else None)
        if uid is not None:
            seen.add(uid)
    columns = {
        "entry": pa.array(np.arange(len(uids), dtype=np.int64)),
        "uid": pa.array(list(uids), pa.string()),
        "record_row": pa.array(record_row, pa.int64()),
        **{name: pa.array(list(values), pa.float64()) for name, values in labels.items()},
    }
    _write(store, ENTRIES, pa.table(columns), {})


def mark_dataset(store: Path, dataset: dict) -> None:
    """Set the manifest's ``dataset`` section: written last, it marks a dataset store finished."""
    _write(store, None, None, {"dataset": dataset})


def _write(store: Path, rel: str | None, table: pa.Table | None, sections: dict) -> None:
    work = store / _WORK
    try:
        if rel is not None:
            atomic_write(store / rel, lambda path: pq.write_table(table, path, compression="zstd"), work)
        update_manifest(store, sections, [rel] if rel else [], work)
    finally:
        remove(work)


def _drawn_from(store: Path, manifest: dict, target: str | None) -> tuple[str, list[str], np.ndarray]:
    """(``entries`` or ``records``, the uids that have the target in order, their entry indices)."""
    if ENTRIES in manifest["files"]:
        source = "entries"
        columns = ["uid"] + ([target] if target else [])
        table = _read_checked(store, manifest, ENTRIES, columns)
    else:
        source = "records"
        table = _record_uids(store, manifest, [target] if target else [])
    keep = table.column("uid").is_valid()
    if target:
        keep = pc.and_(keep, table.column(target).is_valid())
    keep = np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool)
    uids = table.column("uid").filter(pa.array(keep)).to_pylist()
    return source, uids, np.flatnonzero(keep).astype(np.int64)


def draw_split(store: Path, target: str | None, scheme: SplitScheme) -> tuple[pa.Table, dict]:
    """Draw ``scheme`` over the store's entries with ``target`` (no file written): the table and its
    manifest entry."""
    manifest = _manifest(store)
    source, uids, entries = _drawn_from(store, manifest, target)
    drawn = scheme.assign(len(uids))
    positions = np.array([p for name in SPLIT_NAMES for p in drawn[name]], dtype=np.int64)
    names = [name for name in SPLIT_NAMES for _ in drawn[name]]
    table = pa.table(
        {
            "uid": pa.array([uids[p] for p in positions], pa.string()),
            "split": pa.array(names, pa.string()),
            "entry": pa.array(entries[positions]),
            "position": pa.array(positions),
        }
    )
    info = {
        "file": split_file(target, scheme),
        "target": target,
        "scheme": scheme.to_dict(),
        "recipe": "alignn get_id_train_val_test (shuffle with Python random, seed, then slice)",
        "drawn_from": source,
        "labelled": len(uids),
        "sizes": {name: len(drawn[name]) for name in SPLIT_NAMES},
    }
    return table, info


def _read_checked(store: Path, manifest: dict, rel: str, columns: Sequence[str] | None = None) -> pa.Table:
    """A split or entries file, after checking its sha256 against the manifest."""
    path = store / rel
    if not path.is_file() or file_sha256(path) != manifest["files"][rel]["sha256"]:
        raise CorruptSplit(
            f"{path}: missing, or its sha256 differs from the store's manifest; it was modified after it "
            f"was stored. Restore it from a copy of the store (`crystal-data verify {store}`)"
        )
    return pq.read_table(path, columns=columns)


def stored_split(store: Path, target: str | None, scheme: SplitScheme) -> pa.Table | None:
    """The stored split, its sha256 checked against the manifest; ``None`` when not stored."""
    rel = split_file(target, scheme)
    manifest = _manifest(store)
    return _read_checked(store, manifest, rel) if rel in manifest["files"] else None


def split_table(store: Path, target: str | None, scheme: SplitScheme) -> pa.Table:
    """The split ``scheme`` of ``target``: read when stored, else drawn and stored (in memory only for
    a release, and with a warning when the store cannot be written)."""
    table = stored_split(store, target, scheme)
    if table is not None:
        return table
    if "release" in _manifest(store):  # a release is immutable: nothing is ever added to it
        log.info(
            "%s: drew split %s of %s in memory (a release is never modified)", store, scheme.name, target
        )
        return draw_split(store, target, scheme)[0]
    with locked(f"store:{store.resolve()}"):
        table = stored_split(store, target, scheme)  # another process may have drawn it meanwhile
        if table is not None:
            return table
        table, info = draw_split(store, target, scheme)
        try:
            splits = {**_manifest(store).get("splits", {}), f"{target or NO_TARGET}/{scheme.name}": info}
            _write(store, info["file"], table, {"splits": dict(sorted(splits.items()))})
            log.info("%s: drew split %s of %s and stored it in %s", store, scheme.name, target, info["file"])
        except OSError as exc:
            log.warning("%s: cannot store split %s (%s); using it from memory", store, scheme.name, exc)
    return table


def rows_of(store: Path, table: pa.Table) -> tuple[np.ndarray, list[str]]:
    """Store rows of a split table's entries, in its order, and the uids that are not records of the
    store (rejected by the build, or a repeated upstream id)."""
    manifest = _manifest(store)
    entries = table.column("entry").to_numpy()
    if ENTRIES in manifest["files"]:
        record_row = _read_checked(store, manifest, ENTRIES, ["record_row"]).column("record_row")
        mapped = record_row.take(pa.array(entries))
        present = np.asarray(mapped.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        rows = mapped.filter(pa.array(present)).to_numpy().astype(np.int64)
    else:
        present = np.ones(len(entries), dtype=bool)
        rows = entries.astype(np.int64)
    uids = table.column("uid").to_pylist()
    record_uids = _record_uids(store, manifest).column("uid").take(pa.array(rows)).to_pylist()
    if record_uids != [u for u, p in zip(uids, present) if p]:
        raise CorruptSplit(f"{store}: a stored split names records this store does not hold at those rows")
    return rows, [u for u, p in zip(uids, present) if not p]


def store_paper_splits(store: Path, targets: Sequence[str], scheme: SplitScheme) -> None:
    """Draw and store the paper split of every target, so a finished dataset store carries them; a
    target with too few entries for fixed counts is skipped (``load`` explains it when asked)."""
    for target in targets:
        try:
            split_table(store, target, scheme)
        except ValueError as exc:
            log.info("%s: no %s split for %s: %s", store, scheme.name, target, exc)
