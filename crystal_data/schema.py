"""The canonical structure record: one Arrow schema for every source.

Every stage that writes records (CIF folders today, Materials Project, OQMD and JARVIS later) produces
rows of this schema; every stage downstream reads only it. Lengths are in Å; label units live in the
schema metadata under ``crystal_data.label_units`` (JSON: column name -> unit).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pyarrow as pa

SCHEMA_VERSION = 1

CRYSTAL_SYSTEMS: tuple[str, ...] = (
    "triclinic",
    "monoclinic",
    "orthorhombic",
    "tetragonal",
    "trigonal",
    "hexagonal",
    "cubic",
)
"""Crystal systems in the class order CrysGNN uses (index = class id)."""

_VEC3 = pa.list_(pa.float64(), 3)

BASE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("uid", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("source_id", pa.string(), nullable=False),
    pa.field("source_version", pa.string(), nullable=False),
    pa.field("origin", pa.string(), nullable=False),
    pa.field("source_duplicate_of", pa.string()),
    pa.field("formula", pa.string(), nullable=False),
    pa.field("nsites", pa.int32(), nullable=False),
    pa.field("lattice", pa.list_(_VEC3, 3), nullable=False),
    pa.field("atomic_numbers", pa.list_(pa.uint8()), nullable=False),
    pa.field("frac_coords", pa.list_(_VEC3), nullable=False),
    pa.field("spacegroup_number", pa.int16()),
    pa.field("crystal_system", pa.string()),
    pa.field("symmetry_error", pa.string()),
)
"""Fields every record has, in order. Labels follow as float64 columns."""

BASE_FIELD_NAMES = frozenset(f.name for f in BASE_FIELDS)

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("input", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("reason_code", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)
"""Every input that did not become a record: where it was, and why."""


def make_uid(source: str, source_id: str) -> str:
    """The stable record id: ``"<source>:<source_id>"``, never a row number."""
    if not source or ":" in source:
        raise ValueError(f"source name {source!r} must be non-empty and contain no ':'")
    if not source_id:
        raise ValueError(f"empty source id for source {source!r}")
    return f"{source}:{source_id}"


def record_schema(label_units: Mapping[str, str], metadata: Mapping[str, str] | None = None) -> pa.Schema:
    """The record schema with one float64 column per label (``label_units``: name -> unit)."""
    clash = BASE_FIELD_NAMES.intersection(label_units)
    if clash:
        raise ValueError(f"label names {sorted(clash)} collide with record fields")
    fields = list(BASE_FIELDS) + [pa.field(name, pa.float64()) for name in label_units]
    meta = {
        "crystal_data.schema_version": str(SCHEMA_VERSION),
        "crystal_data.label_units": json.dumps(dict(label_units)),
        "crystal_data.lengths": "angstrom",
        **(metadata or {}),
    }
    return pa.schema(fields, metadata=meta)


def label_units_of(schema: pa.Schema) -> dict[str, str]:
    """Label name -> unit, read back from a record schema's metadata."""
    raw = (schema.metadata or {}).get(b"crystal_data.label_units", b"{}")
    return json.loads(raw)


def crystal_system_of(spacegroup_number: int) -> str:
    """Crystal system of an International Tables space-group number (1-230)."""
    if not 1 <= spacegroup_number <= 230:
        raise ValueError(f"space-group number {spacegroup_number} is outside 1-230")
    for upper, name in zip((2, 15, 74, 142, 167, 194, 230), CRYSTAL_SYSTEMS):
        if spacegroup_number <= upper:
            return name
    raise AssertionError("unreachable")
