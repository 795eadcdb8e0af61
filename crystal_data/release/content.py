"""Per-uid content hashes of records, and what changed between two releases.

A record's *structure hash* covers its lattice, atomic numbers and fractional coordinates; its *labels
hash* covers the label names and values (null distinct from NaN). Both are 16-byte BLAKE2b digests of
the exact stored float64 bytes: a record counts as changed when any stored bit differs, since a
tolerance would make "unchanged" depend on a threshold nobody chose. Hashes are computed one records
shard at a time, so memory holds one shard plus three small columns per record (uid and two digests).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

STRUCTURE_COLUMNS = ("lattice", "atomic_numbers", "frac_coords")
HASH_SCHEMA = pa.schema([("uid", pa.string()), ("structure", pa.binary(16)), ("labels", pa.binary(16))])
CHANGES_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("change", pa.string()),
        ("structure_changed", pa.bool_()),
        ("labels_changed", pa.bool_()),
    ]
)
"""``changes.parquet``: ``change`` is ``added``, ``removed`` or ``changed``; the two flags say what
changed (null for added and removed records)."""


def columns_for_hashing(labels: Sequence[str]) -> list[str]:
    return ["uid", *STRUCTURE_COLUMNS, *labels]


def record_hashes(table: pa.Table, labels: Sequence[str]) -> pa.Table:
    """One row per record of ``table`` (in order): uid, structure hash, labels hash. ``table`` holds at
    least :func:`columns_for_hashing` ``(labels)``."""
    lattice = np.asarray(table.column("lattice").combine_chunks().flatten().flatten(), np.float64)
    lattice = lattice.reshape(-1, 9)
    numbers = table.column("atomic_numbers").combine_chunks()
    atom_offsets = numbers.offsets.to_numpy()
    atomic_numbers = numbers.values.to_numpy(zero_copy_only=False)
    frac = table.column("frac_coords").combine_chunks()
    frac_offsets = frac.offsets.to_numpy()
    coords = np.asarray(frac.values.flatten(), np.float64)
    names = sorted(labels)
    values = np.zeros((table.num_rows, len(names)), np.float64)
    missing = np.zeros((table.num_rows, len(names)), np.bool_)
    for k, name in enumerate(names):
        column = table.column(name)
        missing[:, k] = column.is_null().to_numpy(zero_copy_only=False)
        values[:, k] = column.fill_null(0.0).to_numpy(zero_copy_only=False)
    label_prefix = json.dumps(names).encode()
    structure, label_digests = [], []
    for row in range(table.num_rows):
        digest = hashlib.blake2b(lattice[row].tobytes(), digest_size=16)
        digest.update(atomic_numbers[atom_offsets[row] : atom_offsets[row + 1]].tobytes())
        digest.update(coords[3 * frac_offsets[row] : 3 * frac_offsets[row + 1]].tobytes())
        structure.append(digest.digest())
        digest = hashlib.blake2b(label_prefix, digest_size=16)
        digest.update(values[row].tobytes())
        digest.update(missing[row].tobytes())
        label_digests.append(digest.digest())
    return pa.table([table.column("uid"), structure, label_digests], schema=HASH_SCHEMA)


def diff_hashes(old: pa.Table, new: pa.Table) -> pa.Table:
    """The changes from ``old`` to ``new`` (tables of :data:`HASH_SCHEMA`): added records in the new
    store's order, then removed ones in the old store's order, then changed ones in the new order."""
    import polars as pl

    before, after = pl.from_arrow(old), pl.from_arrow(new)
    added = after.filter(~pl.col("uid").is_in(before["uid"].implode())).select("uid")
    removed = before.filter(~pl.col("uid").is_in(after["uid"].implode())).select("uid")
    both = after.join(before, on="uid", how="inner", suffix="_old", maintain_order="left")
    changed = both.select(
        "uid",
        structure_changed=pl.col("structure") != pl.col("structure_old"),
        labels_changed=pl.col("labels") != pl.col("labels_old"),
    ).filter(pl.col("structure_changed") | pl.col("labels_changed"))
    flags = {"structure_changed": pl.lit(None, pl.Boolean), "labels_changed": pl.lit(None, pl.Boolean)}
    changes = pl.concat(
        [
            added.with_columns(change=pl.lit("added"), **flags),
            removed.with_columns(change=pl.lit("removed"), **flags),
            changed.with_columns(change=pl.lit("changed")),
        ],
        how="diagonal",
    ).select(CHANGES_SCHEMA.names)
    return changes.to_arrow().cast(CHANGES_SCHEMA)


def empty_hashes() -> pa.Table:
    """The hashes of no records: the "previous release" of a first release."""
    return HASH_SCHEMA.empty_table()
