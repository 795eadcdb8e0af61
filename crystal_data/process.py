"""One input through parsing, checks, graph building and symmetry: a record or a rejection."""

from __future__ import annotations

import os
from dataclasses import dataclass

from crystal_data.errors import RejectedInput
from crystal_data.graphs.atom_features import has_features
from crystal_data.graphs.config import GraphConfig
from crystal_data.graphs.neighbors import CrystalGraph, nearest_neighbor_graph
from crystal_data.readers.cif import parse_cif
from crystal_data.readers.cif_folder import CifInput
from crystal_data.record import CrystalRecord, check_structure
from crystal_data.symmetry import SymmetryConfig, SymmetryResult, analyze_symmetry

MAX_FILE_BYTES = 50 * 1024 * 1024
"""Larger CIFs are rejected unread: no real crystal of the corpus is within 100x of this."""


@dataclass(frozen=True, eq=False)
class Processed:
    record: CrystalRecord
    formula: str
    symmetry: SymmetryResult
    graph: CrystalGraph
    parser: str


@dataclass(frozen=True)
class Rejected:
    input: str
    source_id: str
    code: str
    reason: str


def process_cif(
    item: CifInput, *, source: str, source_version: str, graph: GraphConfig, symmetry: SymmetryConfig
) -> Processed | Rejected:
    """Never raises for bad data: every failure becomes a :class:`Rejected` naming the reason."""
    try:
        size = os.path.getsize(item.path)
        if size > MAX_FILE_BYTES:
            raise RejectedInput("file_too_large", f"{size} bytes (limit {MAX_FILE_BYTES})")
        with open(item.path, "rb") as handle:
            parsed = parse_cif(handle.read())
        record = CrystalRecord(
            source=source,
            source_id=item.source_id,
            source_version=source_version,
            origin=item.path,
            lattice=parsed.lattice,
            atomic_numbers=parsed.atomic_numbers,
            frac_coords=parsed.frac_coords,
            labels=item.labels,
        )
        return process_record(record, graph=graph, symmetry=symmetry, parser=parsed.parser)
    except RejectedInput as exc:
        return Rejected(item.path, item.source_id, exc.code, exc.reason)
    except FileNotFoundError:
        return Rejected(item.path, item.source_id, "missing_file", "file not found")
    except OSError as exc:
        return Rejected(item.path, item.source_id, "unreadable", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug or a library crash on one file must not stop an 800K build
        return Rejected(item.path, item.source_id, "internal_error", f"{type(exc).__name__}: {exc}"[:500])


def process_record(
    record: CrystalRecord, *, graph: GraphConfig, symmetry: SymmetryConfig, parser: str
) -> Processed:
    """Checks, graph and symmetry for a record from any source. Raises :class:`RejectedInput`."""
    check_structure(record.lattice, record.atomic_numbers, record.frac_coords)
    missing = record.atomic_numbers[~has_features(record.atomic_numbers)]
    if len(missing):
        raise RejectedInput(
            "no_atom_features", f"atomic number {int(missing[0])} has no CGCNN feature vector"
        )
    crystal_graph = nearest_neighbor_graph(record.lattice, record.frac_coords, graph)
    sym = analyze_symmetry(record.lattice, record.frac_coords, record.atomic_numbers, symmetry)
    return Processed(record, record.formula, sym, crystal_graph, parser)
