"""One input through parsing, checks, graph building and symmetry: a record or a rejection."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from crystal_data.errors import RejectedInput
from crystal_data.graphs.atom_features import has_features
from crystal_data.graphs.config import GraphConfig
from crystal_data.graphs.neighbors import CrystalGraph, nearest_neighbor_graph
from crystal_data.readers.cif import parse_cif
from crystal_data.readers.cif_folder import CifInput
from crystal_data.record import CrystalRecord, check_structure
from crystal_data.sources.base import RawRejection
from crystal_data.staging import StagedInput, read_staged
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
    source: str | None = None
    """``None``: the build's source."""

    def plan_key(self) -> list:
        return [self.input, self.source_id, self.code]


def process_cif(
    item: CifInput, *, source: str, source_version: str, graph: GraphConfig, symmetry: SymmetryConfig
) -> Processed | Rejected:
    """Never raises for bad data: every failure becomes a :class:`Rejected` naming the reason."""

    def run() -> Processed:
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

    return _guarded(run, item.path, item.source_id, None)


def process_staged(
    item: StagedInput, *, graph: GraphConfig, symmetry: SymmetryConfig
) -> Processed | Rejected:
    """A staged upstream entry (see :mod:`crystal_data.staging`); never raises for bad data."""
    staged = read_staged(item)
    if isinstance(staged, RawRejection):
        return Rejected(staged.origin, staged.source_id, staged.code, staged.reason, staged.source)

    def run() -> Processed:
        return process_record(staged, graph=graph, symmetry=symmetry, parser="staged")

    return _guarded(run, staged.origin, staged.source_id, staged.source)


def _guarded(
    run: Callable[[], Processed], where: str, source_id: str, source: str | None
) -> Processed | Rejected:
    try:
        return run()
    except RejectedInput as exc:
        return Rejected(where, source_id, exc.code, exc.reason, source)
    except FileNotFoundError:
        return Rejected(where, source_id, "missing_file", "file not found", source)
    except OSError as exc:
        return Rejected(where, source_id, "unreadable", f"{type(exc).__name__}: {exc}", source)
    except Exception as exc:  # a bug or a library crash on one input must not stop an 800K build
        return Rejected(where, source_id, "internal_error", f"{type(exc).__name__}: {exc}"[:500], source)


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
