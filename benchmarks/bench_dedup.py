"""Deduplication at scale: speed, fit calls, memory and accuracy of ``crystal_data.dedup``, and a naive
baseline, on real Materials Project crystals plus perturbed copies of them.

Measured in one run:

1. A corpus of at least ``--min-records`` records: every real crystal of ``--data``, ``--copies``
   rewritten copies of each (the rewrite kind, one of ``crystal_data.dedup.perturbations``, drawn at
   random per copy with ``--seed``; the file is ``<mp-id>~<kind>~<k>.cif``) and one more copy of the
   first crystals until the corpus passes ``--min-records``. The CIFs go into one folder with the
   originals and ``id_prop.csv``; one store is built from it (``--workers``, timed on its own), then
   ``deduplicate_store(..., workers=--workers)`` is timed: records/s, fit calls, matches by method,
   ``all_pairs_within_formula / fit_calls``, peak memory (``getrusage`` of this process and of its
   reaped children, and the sampled RSS sum of the whole process tree per phase), and an
   extrapolation to 800,000 records on 16 cores. Accuracy: recall per copy kind (copies grouped with
   their own original, and by which tier), each missed copy diagnosed (other bucket or matcher "no";
   would the configured matcher, or the matcher with ``attempt_supercell``, fit it to its original: a
   copy in its original's bucket that the matcher fits but the run missed would be a pre-filter
   error), precision (merges that join a crystal to itself, or two real ids that a strict matcher
   confirms), the real mp-ids merged with each other, with their formation energies, and
   ``--check-tier2`` tier-2 (``standard_cell``) merges refitted by the configured matcher.
2. A naive baseline on ``--subset`` records of the same store, drawn as whole formula groups (random
   formulas until the size is reached): group by reduced formula alone and compare every structure
   with every group representative (same ``StructureMatcher`` settings, no fingerprint, no
   space-group buckets), against ``group_bucket`` ((formula, space group) buckets, tiers 1 and 2, and
   pre-filtered fits) on exactly the same records: fit calls, seconds (with the time inside ``fit``,
   inside the ``get_rms_dist`` calls ``group_bucket`` makes after each match, and of the
   fingerprints), recall of the copies, and whether the two give the same groups.

    /usr/bin/time -v .venv/bin/python benchmarks/bench_dedup.py --data /tmp/mp/mp-formation-energy \\
        --work /tmp/dedup-bench --out-md /tmp/dedup-bench.md

With ``--check-prefilter STORE`` (no ``--data`` or ``--work``) it checks the fit pre-filter only: every
pair of records of STORE sharing a reduced formula (``--pairs formula``) or a candidate bucket
(``--pairs bucket``), in priority order, gets the pre-filter's verdict and, when it rejects the pair,
a plain ``StructureMatcher.fit`` (original structures, pymatgen's own reduction), which must say no
(``--fit-all``: every pair is fitted, and the fit of the pre-reduced cells that the dedup runs is
compared with the plain fit):

    .venv/bin/python benchmarks/bench_dedup.py --check-prefilter /tmp/store-33k-b --pairs formula

``--data`` takes an extracted folder or the tarball ``mp-formation-energy-33k.tar.gz`` (extracted once
into ``--work/data``). The corpus folder under ``--work`` is reused when it was written with the same
settings; the store is always rebuilt. Memory sampling reads ``/proc`` (Linux).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import resource
import shlex
import shutil
import sys
import threading
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pyarrow as pa
from common import cpu_model, md_table, publish, resolve_data, usable_cores

import crystal_data
from crystal_data.build import BuildReport, BuildSettings, build_from_cif_folder
from crystal_data.convert import to_structure
from crystal_data.dedup import (
    DedupConfig,
    DedupReport,
    Member,
    deduplicate_store,
    group_bucket,
    structure_fingerprint,
)
from crystal_data.dedup.grouping import Candidate, make_matcher
from crystal_data.dedup.perturbations import PERTURBATIONS
from crystal_data.dedup.prefilter import rejection
from crystal_data.errors import RejectedInput
from crystal_data.readers.cif import parse_cif
from crystal_data.record import CrystalRecord
from crystal_data.schema import make_uid

SOURCE = "mp"
LABEL, LABEL_UNIT = "formation_energy_per_atom", "eV/atom"
SEPARATOR = "~"
"""Copy ids are ``<original id>~<kind>~<k>``."""
TARGET_RECORDS, TARGET_CORES, TARGET_HOURS, TARGET_RATIO = 800_000, 16, 1.0, 100.0
MARGIN = 200
"""Extra CIFs beyond ``--min-records``, so a few rejected inputs still leave enough records."""
STRICT_MATCHER: dict[str, object] = {"ltol": 0.1, "stol": 0.1, "angle_tol": 2.0, "scale": False}
"""Confirms that two real ids are one crystal: tighter tolerances and no volume scaling."""
LABEL_CONFLICT = 0.1
"""eV/atom: two merged real ids whose formation energies differ more disagree on the label."""
EXACT_REWRITES = ("origin_shift", "permuted", "setting")
"""Copy kinds that only rewrite the description (no noise, no supercell)."""
SAMPLE_EVERY_S = 0.5
LIBRARIES = ("numpy", "pymatgen", "spglib", "pyarrow", "polars")
STRUCTURE_COLUMNS = ["uid", "source", "source_id", "lattice", "atomic_numbers", "frac_coords"]

if TYPE_CHECKING:
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

T = TypeVar("T")


# --------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Original:
    source_id: str
    path: Path
    energy: float | None


def load_originals(folder: Path, limit: int | None) -> list[Original]:
    """The crystals of ``id_prop.csv`` whose CIF exists, in file order (the first ``limit``)."""
    with open(folder / "id_prop.csv", newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    originals = [Original(row[0], folder / f"{row[0]}.cif", _float(row[1])) for row in rows]
    originals = [o for o in originals if o.path.exists()]
    return originals[:limit] if limit else originals


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class CopyJob:
    """The copies of one original: ``(kind, k)`` pairs; ``index`` seeds their random streams."""

    index: int
    source_id: str
    path: str
    copies: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Corpus:
    folder: Path
    originals: int
    copies_by_kind: dict[str, int]
    extra_copies: int
    failures: list[str]
    seconds: float
    reused: bool

    @property
    def files(self) -> int:
        return self.originals + sum(self.copies_by_kind.values()) - len(self.failures)


def copy_id(source_id: str, kind: str, k: int) -> str:
    return f"{source_id}{SEPARATOR}{kind}{SEPARATOR}{k}"


def base_id(source_id: str) -> str:
    return source_id.split(SEPARATOR, 1)[0]


def kind_of(source_id: str) -> str | None:
    parts = source_id.split(SEPARATOR)
    return parts[1] if len(parts) == 3 else None


def plan_copies(originals: Sequence[Original], copies: int, min_records: int, seed: int) -> list[CopyJob]:
    """``copies`` per original, then one more for the first originals until ``min_records`` (plus
    ``MARGIN``) files; every kind drawn from one seeded stream, in that order."""
    extra = max(0, min_records + MARGIN - len(originals) * (1 + copies)) if min_records else 0
    if extra > len(originals):
        sys.exit(f"error: {extra} extra copies needed but only {len(originals)} originals; raise --copies")
    kinds = iter(
        np.random.default_rng(seed).choice(sorted(PERTURBATIONS), size=len(originals) * copies + extra)
    )
    per_original: list[list[tuple[str, int]]] = [
        [(str(next(kinds)), k) for k in range(copies)] for _ in originals
    ]
    for i in range(extra):
        per_original[i].append((str(next(kinds)), copies))
    return [
        CopyJob(i, o.source_id, str(o.path), tuple(pairs))
        for i, (o, pairs) in enumerate(zip(originals, per_original))
    ]


def write_copies(job: CopyJob, folder: str, seed: int) -> list[str]:
    """Write the job's copies as P1 CIFs; returns the ids that could not be written, with why."""
    from pymatgen.io.cif import CifWriter

    try:
        parsed = parse_cif(Path(job.path).read_bytes())
    except RejectedInput as exc:
        return [f"{copy_id(job.source_id, kind, k)}: {exc.code}" for kind, k in job.copies]
    failures = []
    for kind, k in job.copies:
        rng = np.random.default_rng([seed, job.index, k])
        crystal = (parsed.lattice, parsed.atomic_numbers, parsed.frac_coords)
        lattice, numbers, frac = PERTURBATIONS[kind](crystal, rng)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                text = str(CifWriter(to_structure(CrystalRecord("x", "x", lattice, numbers, frac))))
        except Exception as exc:  # a copy that pymatgen cannot write is reported, not fatal
            failures.append(f"{copy_id(job.source_id, kind, k)}: {type(exc).__name__}: {exc}")
            continue
        (Path(folder) / f"{copy_id(job.source_id, kind, k)}.cif").write_text(text, encoding="utf-8")
    return failures


def make_corpus(
    originals: Sequence[Original], source: Path, folder: Path, args: argparse.Namespace
) -> Corpus:
    """Write (or reuse, when its settings match) the corpus folder."""
    jobs = plan_copies(originals, args.copies, args.min_records, args.seed)
    settings = {
        "source": str(source),
        "originals": len(originals),
        "copies": args.copies,
        "min_records": args.min_records,
        "seed": args.seed,
    }
    kinds = Counter(kind for job in jobs for kind, _ in job.copies)
    extra = sum(len(job.copies) - args.copies for job in jobs)
    marker = folder / ".complete.json"
    if marker.exists():
        saved = json.loads(marker.read_text())
        if saved["settings"] == settings:
            log(f"reusing the corpus in {folder}")
            return Corpus(
                folder, len(originals), dict(kinds), extra, saved["failures"], saved["seconds"], True
            )
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log(f"writing {sum(kinds.values()):,} copies of {len(originals):,} crystals to {folder}")
    start = time.perf_counter()
    _write_id_prop(originals, folder / "id_prop.csv")
    for original in originals:
        shutil.copyfile(original.path, folder / original.path.name)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = pool.map(partial(write_copies, folder=str(folder), seed=args.seed), jobs, chunksize=64)
        failures = [failure for result in results for failure in result]
    seconds = time.perf_counter() - start
    marker.write_text(json.dumps({"settings": settings, "failures": failures, "seconds": seconds}))
    return Corpus(folder, len(originals), dict(kinds), extra, failures, seconds, False)


def _write_id_prop(originals: Sequence[Original], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for o in originals:
            writer.writerow([o.source_id, "" if o.energy is None else repr(o.energy)])


# ------------------------------------------------------------------------------------------ memory


class TreeRss:
    """Samples, in a thread, the summed RSS of this process and all its descendants (``/proc``)."""

    def __init__(self, every: float = SAMPLE_EVERY_S):
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(os.getpid()))
            self._stop.wait(self.every)


def tree_rss_bytes(root: int) -> int:
    """Summed resident set of ``root`` and its descendants (0 where ``/proc`` cannot be read)."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent_of[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parent_of.items() if parent == pid]
        tree.update(children)
        frontier.extend(children)
    return sum(_rss_bytes(pid) for pid in tree)


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class Phase:
    """One timed phase: wall seconds, peak summed RSS of the process tree, and ``ru_maxrss`` (the
    largest single process) of this process and of its reaped children, both as of the phase's end."""

    name: str
    seconds: float
    tree_peak: int
    self_maxrss: int
    children_maxrss: int


def run_phase(name: str, fn: Callable[[], T], phases: list[Phase]) -> T:
    log(f"{name} ...")
    with TreeRss() as rss:
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
    kib = 1024  # Linux reports ru_maxrss in KiB
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib
    phases.append(Phase(name, seconds, rss.peak, own, children))
    log(f"{name}: {seconds:.1f} s")
    return result


# ---------------------------------------------------------------------------------------- accuracy


@dataclass(frozen=True)
class Row:
    uid: str
    source_id: str
    formula: str
    spacegroup: int | None
    nsites: int


@dataclass(frozen=True)
class Merge:
    canonical_uid: str
    member_uid: str
    method: str
    rms: float | None


class Structures:
    """The store's structures by source id (loaded once), and fits of two of them under a matcher."""

    def __init__(self, store: crystal_data.Store):
        self.table = store.records_table(columns=STRUCTURE_COLUMNS)
        self.row_of = {uid: k for k, uid in enumerate(self.table.column("uid").to_pylist())}

    def get(self, source_id: str) -> Structure | None:
        row = self.row_of.get(make_uid(SOURCE, source_id))
        if row is None:
            return None
        r = self.table.slice(row, 1).to_pylist()[0]
        return to_structure(CrystalRecord("x", "x", r["lattice"], r["atomic_numbers"], r["frac_coords"]))

    def fit(self, a: str, b: str, matcher: StructureMatcher) -> bool | None:
        """``None`` when either is not in the store."""
        first, second = self.get(a), self.get(b)
        if first is None or second is None:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(matcher.fit(first, second))


def variant_matcher(config: DedupConfig, **changes: object) -> StructureMatcher:
    """The configured matcher with some settings changed."""
    from pymatgen.analysis.structure_matcher import ElementComparator
    from pymatgen.analysis.structure_matcher import StructureMatcher as Matcher

    settings = {
        "ltol": config.ltol,
        "stol": config.stol,
        "angle_tol": config.angle_tol,
        "primitive_cell": True,
        "scale": True,
        "attempt_supercell": False,
        **changes,
    }
    return Matcher(**settings, comparator=ElementComparator())


@dataclass(frozen=True)
class Miss:
    """A copy not grouped with its original, with what would have found it."""

    source_id: str
    formula: str
    spacegroups: tuple[int | None, int | None]
    """(copy, original) at the build's symprec: different means other buckets, never compared"""
    nsites: tuple[int, int]
    configured_fit: bool | None
    supercell_fit: bool | None
    """the configured matcher with ``attempt_supercell=True``"""

    @property
    def other_bucket(self) -> bool:
        return self.spacegroups[0] != self.spacegroups[1]


@dataclass(frozen=True)
class RealPair:
    """Two real ids in one group: ``merged`` joined the group of ``canonical`` (or its copies did)."""

    canonical: str
    merged: str
    confirmed: bool
    originals_together: bool
    originals_merge: str
    """method and RMS of the merge of the two originals, when they are in one group"""


@dataclass
class Accuracy:
    copies: int = 0
    recalled: int = 0
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    """kind -> counts of ``copies``, ``recalled`` and, for merged copies, each method"""
    misses: list[Miss] = field(default_factory=list)
    merges: int = 0
    same_crystal: int = 0
    confirmed_real: int = 0
    unconfirmed_real: list[str] = field(default_factory=list)
    real_pairs: list[RealPair] = field(default_factory=list)
    chained_canonicals: int = 0
    tier2: Tier2Check | None = None


@dataclass(frozen=True)
class Tier2Check:
    """Tier-2 (``standard_cell``) merges refitted by the configured matcher, ``fit(canonical, member)``."""

    merges: int
    checked: int
    """a random sample of the merges (all of them when fewer)"""
    refused: list[str]
    """``member -> canonical`` of the checked merges the matcher does not fit"""


def group_map(rows: Sequence[Row], merges: Sequence[Merge]) -> dict[str, str]:
    """uid -> canonical uid of its group (itself when canonical)."""
    group = {row.uid: row.uid for row in rows}
    for merge in merges:
        group[merge.member_uid] = merge.canonical_uid
    return group


def measure_accuracy(
    rows: Sequence[Row],
    merges: Sequence[Merge],
    structures: Structures,
    config: DedupConfig,
    tier2_sample: int,
    seed: int,
) -> Accuracy:
    """Recall (with a diagnosis of every miss), precision, the real ids merged with each other, each
    pair checked by ``STRICT_MATCHER``, and up to ``tier2_sample`` tier-2 merges refitted."""
    acc = Accuracy(merges=len(merges), tier2=check_tier2(merges, structures, config, tier2_sample, seed))
    by_uid = {row.uid: row for row in rows}
    group = group_map(rows, merges)
    members = {m.member_uid for m in merges}
    acc.chained_canonicals = sum(m.canonical_uid in members for m in merges)
    _recall(acc, rows, merges, by_uid, group)
    acc.misses = [_diagnose(row, by_uid, structures, config) for row in _missed(rows, by_uid, group)]
    acc.real_pairs = real_pairs(group, structures, merges)
    confirmed = {(p.canonical, p.merged): p.confirmed for p in acc.real_pairs}
    for merge in merges:
        member, head = by_uid[merge.member_uid].source_id, by_uid[merge.canonical_uid].source_id
        if base_id(member) == base_id(head):
            acc.same_crystal += 1
        elif confirmed[(base_id(head), base_id(member))]:
            acc.confirmed_real += 1
        else:
            acc.unconfirmed_real.append(f"{member} -> {head}")
    return acc


def check_tier2(
    merges: Sequence[Merge], structures: Structures, config: DedupConfig, sample: int, seed: int
) -> Tier2Check:
    tier2 = [m for m in merges if m.method == "standard_cell"]
    if len(tier2) > sample:
        tier2_sample = [
            tier2[k] for k in sorted(np.random.default_rng(seed).choice(len(tier2), sample, False))
        ]
    else:
        tier2_sample = tier2
    matcher = variant_matcher(config)
    refused = [
        f"{source_id_of(m.member_uid)} -> {source_id_of(m.canonical_uid)}"
        for m in tier2_sample
        if not structures.fit(source_id_of(m.canonical_uid), source_id_of(m.member_uid), matcher)
    ]
    return Tier2Check(len(tier2), len(tier2_sample), refused)


def _recall(
    acc: Accuracy, rows: Sequence[Row], merges: Sequence[Merge], by_uid: dict[str, Row], group: dict[str, str]
) -> None:
    method_of = {m.member_uid: m.method for m in merges}
    for row in rows:
        kind = kind_of(row.source_id)
        original = by_uid.get(make_uid(SOURCE, base_id(row.source_id)))
        if kind is None or original is None:
            continue
        counts = acc.by_kind.setdefault(kind, Counter())
        counts["copies"] += 1
        acc.copies += 1
        if group[row.uid] == group[original.uid]:
            counts["recalled"] += 1
            counts[method_of[row.uid]] += 1
            acc.recalled += 1


def _missed(rows: Sequence[Row], by_uid: dict[str, Row], group: dict[str, str]) -> list[Row]:
    missed = []
    for row in rows:
        original = by_uid.get(make_uid(SOURCE, base_id(row.source_id)))
        if kind_of(row.source_id) and original is not None and group[row.uid] != group[original.uid]:
            missed.append(row)
    return missed


def _diagnose(row: Row, by_uid: dict[str, Row], structures: Structures, config: DedupConfig) -> Miss:
    original = by_uid[make_uid(SOURCE, base_id(row.source_id))]
    return Miss(
        row.source_id,
        row.formula,
        (row.spacegroup, original.spacegroup),
        (row.nsites, original.nsites),
        structures.fit(original.source_id, row.source_id, variant_matcher(config)),
        structures.fit(original.source_id, row.source_id, variant_matcher(config, attempt_supercell=True)),
    )


def real_pairs(group: dict[str, str], structures: Structures, merges: Sequence[Merge] = ()) -> list[RealPair]:
    """Every (canonical's real id, other real id) pair inside one group of ``group`` (uid -> canonical
    uid), with the strict matcher's verdict on the two originals."""
    merge_of = {m.member_uid: m for m in merges}
    real_ids: dict[str, set[str]] = defaultdict(set)
    for uid, canonical in group.items():
        real_ids[canonical].add(base_id(source_id_of(uid)))
    strict = variant_matcher(DedupConfig(), **STRICT_MATCHER)
    pairs = []
    for canonical, ids in sorted(real_ids.items()):
        head = base_id(source_id_of(canonical))
        for other in sorted(ids - {head}):
            together = group.get(make_uid(SOURCE, other)) == group.get(make_uid(SOURCE, head))
            merge = merge_of.get(make_uid(SOURCE, other))
            described = (
                f"{merge.method}" + ("" if merge.rms is None else f", RMS {merge.rms:.3f}")
                if together and merge is not None
                else "—"
            )
            pairs.append(
                RealPair(head, other, bool(structures.fit(head, other, strict)), together, described)
            )
    return pairs


def source_id_of(uid: str) -> str:
    return uid.split(":", 1)[1]


# ------------------------------------------------------------------------------------------- naive


class TimedMatcher:
    """A ``StructureMatcher`` that counts and times its ``fit`` and ``get_rms_dist`` calls (``group_bucket``
    follows every successful fit with ``get_rms_dist``, a second matching of the same pair)."""

    def __init__(self, config: DedupConfig):
        self.matcher = make_matcher(config)
        self.calls: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()

    def fit(self, a: object, b: object, **options: object) -> bool:
        return self._timed("fit", self.matcher.fit, a, b, **options)

    def get_rms_dist(self, a: object, b: object) -> tuple[float, float] | None:
        return self._timed("get_rms_dist", self.matcher.get_rms_dist, a, b)

    def _timed(self, name: str, fn: Callable[..., T], *args: object, **options: object) -> T:
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fn(*args, **options)
        finally:
            self.calls[name] += 1
            self.seconds[name] += time.perf_counter() - start


@dataclass(frozen=True)
class Grouping:
    name: str
    group: dict[str, str]
    fit_calls: int
    seconds: float
    matcher: dict[str, tuple[int, float]] = field(default_factory=dict)
    """method -> (calls, seconds) of the matcher"""
    fingerprints: tuple[int, float] = (0, 0.0)
    """(fingerprints, seconds of a separate untimed pass computing the same fingerprints)"""

    @property
    def partition(self) -> set[frozenset[str]]:
        groups: dict[str, set[str]] = defaultdict(set)
        for uid, canonical in self.group.items():
            groups[canonical].add(uid)
        return {frozenset(members) for members in groups.values()}


def sample_formulas(rows: Sequence[Row], size: int, seed: int) -> list[int]:
    """Row indices of whole formula groups, formulas drawn at random until ``size`` rows."""
    by_formula: dict[str, list[int]] = defaultdict(list)
    for k, row in enumerate(rows):
        by_formula[row.formula].append(k)
    formulas = sorted(by_formula)
    chosen: list[int] = []
    for index in np.random.default_rng(seed).permutation(len(formulas)):
        if len(chosen) >= size:
            break
        chosen.extend(by_formula[formulas[index]])
    return sorted(chosen)


def load_members(store: crystal_data.Store, indices: Sequence[int]) -> list[Member]:
    return load_members_from(store.records_table(columns=STRUCTURE_COLUMNS).take(list(indices)))


def load_members_from(table: pa.Table) -> list[Member]:
    return [
        Member(
            r["uid"],
            r["source"],
            r["source_id"],
            np.asarray(r["lattice"], dtype=np.float64),
            np.asarray(r["frac_coords"], dtype=np.float64),
            np.asarray(r["atomic_numbers"], dtype=np.int64),
        )
        for r in table.to_pylist()
    ]


def naive_grouping(members: Sequence[Member], keys: Sequence[str], config: DedupConfig) -> Grouping:
    """By reduced formula alone; every structure against every representative, in priority order."""
    matcher = TimedMatcher(config)
    by_formula: dict[str, list[Member]] = defaultdict(list)
    for member, formula in zip(members, keys):
        by_formula[formula].append(member)
    group = {}
    start = time.perf_counter()
    for formula in sorted(by_formula):
        representatives: list[tuple[str, object]] = []
        for member in sorted(by_formula[formula], key=lambda m: config.rank(m.source, m.source_id)):
            structure = to_structure(member)
            group[member.uid] = next(
                (uid for uid, rep in representatives if matcher.fit(rep, structure)), None
            )
            if group[member.uid] is None:
                group[member.uid] = member.uid
                representatives.append((member.uid, structure))
    seconds = time.perf_counter() - start
    return Grouping(
        "naive: formula only, all representatives",
        group,
        matcher.calls["fit"],
        seconds,
        {name: (matcher.calls[name], matcher.seconds[name]) for name in sorted(matcher.calls)},
    )


def ours_grouping(
    members: Sequence[Member], keys: Sequence[tuple[str, int | None]], config: DedupConfig
) -> Grouping:
    """``group_bucket`` on (formula, space group) buckets, as ``deduplicate_store`` runs it."""
    matcher = TimedMatcher(config)
    buckets: dict[tuple[str, int | None], list[Member]] = defaultdict(list)
    for member, key in zip(members, keys):
        buckets[key].append(member)
    group = {member.uid: member.uid for member in members}
    fit_calls = fingerprints = 0
    start = time.perf_counter()
    for key in sorted(buckets, key=lambda k: (k[0], -1 if k[1] is None else k[1])):
        result = group_bucket(buckets[key], config, matcher)
        fit_calls += result.fit_calls
        fingerprints += result.fingerprints
        for match in result.matches:
            group[match.member_uid] = match.canonical_uid
    seconds = time.perf_counter() - start
    fingerprinted = [m for bucket in buckets.values() if len(bucket) > 1 for m in bucket]
    return Grouping(
        "ours: (formula, space group) buckets, tiers 1-2, pre-filtered fits",
        group,
        fit_calls,
        seconds,
        {name: (matcher.calls[name], matcher.seconds[name]) for name in sorted(matcher.calls)},
        (fingerprints, fingerprint_seconds(fingerprinted, config)),
    )


def fingerprint_seconds(members: Sequence[Member], config: DedupConfig) -> float:
    start = time.perf_counter()
    for m in members:
        structure_fingerprint(
            m.lattice, m.frac_coords, m.atomic_numbers, config.symprec, config.angle_tolerance
        )
    return time.perf_counter() - start


def warm_up(members: Sequence[Member], config: DedupConfig) -> None:
    """One untimed fit, so that neither timing pays pymatgen's first-use costs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_matcher(config).fit(to_structure(members[0]), to_structure(members[0]))


def subset_quality(g: Grouping) -> tuple[int, int, int]:
    """(copies, copies grouped with their own original, groups holding two or more real ids)."""
    copies = recalled = 0
    for uid, canonical in g.group.items():
        source_id = source_id_of(uid)
        original = make_uid(SOURCE, base_id(source_id))
        if kind_of(source_id) and original in g.group:
            copies += 1
            recalled += canonical == g.group[original]
    mixed = sum(len({base_id(source_id_of(uid)) for uid in members}) > 1 for members in g.partition)
    return copies, recalled, mixed


def compare_groupings(a: Grouping, b: Grouping) -> tuple[int, int, int]:
    """(groups of ``a``, groups of ``b``, records whose group differs between them)."""
    pa_, pb = a.partition, b.partition
    differing = {uid for members in pa_ ^ pb for uid in members}
    return len(pa_), len(pb), len(differing)


# ------------------------------------------------------------------------------------------- store


def load_rows(store: crystal_data.Store) -> list[Row]:
    frame = store.records.select(["uid", "source_id", "formula", "spacegroup_number", "nsites"])
    return [Row(*values) for values in frame.iter_rows()]


def load_merges(store: crystal_data.Store) -> list[Merge]:
    frame = store.duplicates.select(["canonical_uid", "member_uid", "method", "rms_distance"])
    return [Merge(*values) for values in frame.iter_rows()]


# ---------------------------------------------------------------------------------------- markdown


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f} %" if whole else "n/a"


def gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"


def ratio(a: float, b: float) -> str:
    return f"{a / b:,.1f}x" if b else "n/a"


def environment(args: argparse.Namespace) -> str:
    cpu = cpu_model()
    cores = usable_cores()
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in LIBRARIES)
    command = " ".join(shlex.quote(part) for part in [".venv/bin/python", *sys.argv])
    return (
        f"- date {dt.date.today().isoformat()}; CPU {cpu}; {cores} core(s) usable; "
        f"`--workers {args.workers}` for the copies, the build and the dedup\n"
        f"- Python {platform.python_version()}; crystal_data {crystal_data.__version__}; {versions}\n"
        f"- `DedupConfig()`: {DedupConfig().to_dict()}\n"
        f"- command (run from the repository root, wrapped in `/usr/bin/time -v` for the whole-run peak "
        f"RSS):\n\n      /usr/bin/time -v {command}"
    )


def corpus_section(corpus: Corpus, build: BuildReport, phase: Phase, args: argparse.Namespace) -> str:
    rows = [
        ["real crystals (originals, copied as they are)", f"{corpus.originals:,}"],
        *[[f"copies: `{kind}`", f"{n:,}"] for kind, n in sorted(corpus.copies_by_kind.items())],
        [f"of which extra copies (k = {args.copies}) of the first crystals", f"{corpus.extra_copies:,}"],
        ["copies that could not be written", f"{len(corpus.failures):,}"],
        ["CIF files", f"{corpus.files:,}"],
        [
            "writing the copies (seconds, workers)",
            f"{corpus.seconds:.1f} s, {args.workers}"
            + (" (reused from an earlier run)" if corpus.reused else ""),
        ],
        ["records in the store / rejected inputs", f"{build.records:,} / {build.rejected:,}"],
        [
            f"**build** `build_from_cif_folder(..., workers={args.workers})`",
            f"**{phase.seconds:.1f} s** ({build.records / phase.seconds:,.0f} records/s)",
        ],
    ]
    text = md_table(["corpus", "value"], rows)
    if corpus.failures:
        text += "\n\nCopies not written: " + "; ".join(corpus.failures[:20])
    return text


def speed_section(report: DedupReport, counts: dict, phase: Phase, workers: int) -> str:
    per_core = report.records / (phase.seconds * workers)
    hours = TARGET_RECORDS / (per_core * TARGET_CORES) / 3600
    all_pairs = counts["all_pairs_within_formula"]
    rows = [
        ["records", f"{report.records:,}"],
        ["canonical / duplicates", f"{report.canonical:,} / {report.duplicates:,}"],
        ["matches by method", ", ".join(f"{k} {v:,}" for k, v in report.by_method.items())],
        [
            "candidate buckets, multi-member buckets",
            f"{counts['buckets']:,}, {counts['multi_member_buckets']:,}",
        ],
        ["fingerprints computed", f"{counts['fingerprints']:,}"],
        ["**StructureMatcher fit calls**", f"**{report.fit_calls:,}**"],
        [
            "fits skipped by the pre-filter (a necessary condition fails), by reason",
            ", ".join(f"{k} {v:,}" for k, v in counts["fits_skipped_by_prefilter"].items()) or "none",
        ],
        [
            "StructureMatcher matches (each also costs a `get_rms_dist` call, not counted as a fit call)",
            f"{report.by_method.get('structure_matcher', 0):,}",
        ],
        ["all pairs within a formula", f"{all_pairs:,}"],
        ["all pairs within a bucket", f"{counts['all_pairs_within_buckets']:,}"],
        [
            f"**all pairs within formula / fit calls** (target ≥ {TARGET_RATIO:.0f}x)",
            f"**{ratio(all_pairs, report.fit_calls)}**",
        ],
        [
            "bound on that ratio here: all pairs / StructureMatcher matches (each needs at least one fit)",
            ratio(all_pairs, report.by_method.get("structure_matcher", 0)),
        ],
        [
            f"**dedup wall time** (`workers={workers}`)",
            f"**{phase.seconds:.1f} s** (report: {report.seconds:.1f} s)",
        ],
        ["records/s", f"{report.records / phase.seconds:,.0f}"],
        ["records/s per core (records / (wall × workers))", f"{per_core:,.0f}"],
        [
            f"**extrapolated: {TARGET_RECORDS:,} records on {TARGET_CORES} cores** "
            f"(target < {TARGET_HOURS:g} h)",
            f"**{hours:.2f} h** ({hours * 60:.1f} min)",
        ],
    ]
    return md_table(["dedup", "value"], rows) + (
        "\n\nThe extrapolation is linear in records: it assumes the per-core rate holds at 16 workers (the "
        "serial part, reading the records and partitioning them, is in the wall time here) and that an "
        "800K corpus has buckets like this one; fit calls grow with (records per bucket) × (groups per "
        "bucket), so a corpus with larger polymorph families costs more per record."
    )


def memory_section(phases: Sequence[Phase]) -> str:
    rows = [
        [p.name, f"{p.seconds:.1f}", gib(p.tree_peak), gib(p.self_maxrss), gib(p.children_maxrss)]
        for p in phases
    ]
    headers = [
        "phase",
        "seconds",
        "peak RSS sum, whole process tree (sampled)",
        "ru_maxrss, this process (so far)",
        "ru_maxrss, largest reaped child (so far)",
    ]
    return md_table(headers, rows) + (
        "\n\n`ru_maxrss` is the peak of one process, monotone over the run: the dedup workers are separate "
        "processes, counted under children once reaped. The tree sum adds this process and every "
        f"descendant, sampled every {SAMPLE_EVERY_S} s. `/usr/bin/time -v` reports the largest single "
        "process of the whole run."
    )


def accuracy_section(acc: Accuracy, rows: Sequence[Row], energies: dict[str, float | None]) -> str:
    sections = [
        recall_table(acc),
        misses_section(acc.misses),
        precision_table(acc),
        _listing("Not confirmed (member -> canonical)", acc.unconfirmed_real),
        f"Canonical uids that are themselves members (must be 0): {acc.chained_canonicals}.",
        real_pairs_section(acc.real_pairs, rows, energies),
        tier2_section(acc.tier2),
    ]
    return "\n\n".join(section for section in sections if section)


def tier2_section(check: Tier2Check | None) -> str:
    if check is None or not check.merges:
        return ""
    same = sum(base_id(a) == base_id(b) for a, b in (r.split(" -> ") for r in check.refused))
    return _listing(
        f"**Tier-2 merges refitted by the configured matcher: {check.checked:,} of {check.merges:,}** (a "
        f"random sample when more), {len(check.refused)} not fitted, {same} of them a copy joined to its "
        "own original",
        check.refused,
    ) or (
        f"**Tier-2 merges refitted by the configured matcher: {check.checked:,} of {check.merges:,}** (a "
        "random sample when more): the matcher fits every one."
    )


def precision_table(acc: Accuracy) -> str:
    correct = acc.same_crystal + acc.confirmed_real
    unconfirmed = len(acc.unconfirmed_real)
    rows = [
        ["copy or original joined to its own crystal", acc.same_crystal],
        ["two real ids, confirmed one crystal by the strict matcher", acc.confirmed_real],
        ["two real ids, not confirmed (counted wrong)", unconfirmed],
    ]
    table = [[label, f"{n:,}", pct(n, acc.merges)] for label, n in rows]
    table.append(
        [
            "**precision** (correct / all merges)",
            f"**{correct:,} / {acc.merges:,}**",
            f"**{pct(correct, acc.merges)}**",
        ]
    )
    return md_table(["merges (rows of duplicates.parquet)", "count", "share"], table)


def recall_table(acc: Accuracy) -> str:
    methods = sorted({m for c in acc.by_kind.values() for m in c} - {"copies", "recalled"})
    rows = [
        [f"`{kind}`", f"{c['copies']:,}", f"{c['recalled']:,}", pct(c["recalled"], c["copies"])]
        + [f"{c[m]:,}" for m in methods]
        for kind, c in sorted(acc.by_kind.items())
    ]
    total = sum(acc.by_kind.values(), Counter())
    rows.append(
        ["**all copies**", f"{acc.copies:,}", f"{acc.recalled:,}", f"**{pct(acc.recalled, acc.copies)}**"]
        + [f"{total[m]:,} ({pct(total[m], acc.recalled)})" for m in methods]
    )
    headers = ["copy kind", "copies", "grouped with their own original", "recall"]
    return md_table(headers + [f"… of which by `{m}`" for m in methods], rows)


def misses_section(misses: Sequence[Miss]) -> str:
    if not misses:
        return "Missed copies: none."
    other = [m for m in misses if m.other_bucket]
    exact = [m for m in other if kind_of(m.source_id) in EXACT_REWRITES]
    rows = [
        [
            m.source_id,
            m.formula,
            f"{m.spacegroups[0]} / {m.spacegroups[1]}",
            f"{m.nsites[0]} / {m.nsites[1]}",
            "other bucket" if m.other_bucket else "same bucket",
            _yes_no(m.configured_fit),
            _yes_no(m.supercell_fit),
        ]
        for m in sorted(misses, key=lambda m: (not m.other_bucket, m.source_id))
    ]
    headers = [
        "missed copy",
        "formula",
        "space group copy / original",
        "sites copy / original",
        "where",
        "configured matcher fits it to its original",
        "… with `attempt_supercell=True`",
    ]
    return (
        f"**Missed copies: {len(misses)}**: {len(other)} in another (formula, space group) bucket than their "
        f"original, never compared ({len(exact)} of them exact rewrites ({', '.join(EXACT_REWRITES)}): "
        "the build's space group, spglib at symprec 0.1, changed with the site order, origin or basis "
        f"alone); {len(misses) - len(other)} in their original's bucket, rejected by the matcher.\n\n"
        + md_table(headers, rows)
    )


def _yes_no(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")


def _listing(title: str, items: Sequence[str], limit: int = 30) -> str:
    if not items:
        return ""
    more = f" … and {len(items) - limit} more" if len(items) > limit else ""
    return f"{title} ({len(items)}): " + "; ".join(items[:limit]) + more


def real_pairs_section(
    pairs: Sequence[RealPair], rows: Sequence[Row], energies: dict[str, float | None]
) -> str:
    ids = {i for p in pairs for i in (p.canonical, p.merged)}
    title = (
        f"**Real mp-ids merged with each other: {len(ids)} distinct ids in {len(pairs)} pairs** (a pair "
        "counts when members of one group, originals or copies, come from two real ids). Strict matcher: "
        f"`{STRICT_MATCHER}`, primitive cell, on the two originals; label conflict: "
        f"|ΔE_f| > {LABEL_CONFLICT} eV/atom."
    )
    return title + ("\n\n" + real_pairs_table(pairs, rows, energies) if pairs else "")


def real_pairs_table(
    pairs: Sequence[RealPair], rows: Sequence[Row], energies: dict[str, float | None]
) -> str:
    by_id = {row.source_id: row for row in rows}
    table = []
    for p in pairs:
        a, b = by_id.get(p.canonical), by_id.get(p.merged)
        ea, eb = energies.get(p.canonical), energies.get(p.merged)
        gap = None if ea is None or eb is None else abs(ea - eb)
        table.append(
            [
                p.canonical,
                p.merged,
                a.formula if a else "?",
                f"{a.spacegroup if a else '?'} / {b.spacegroup if b else '?'}",
                f"{a.nsites if a else '?'} / {b.nsites if b else '?'}",
                f"{_energy(ea)} / {_energy(eb)}",
                _energy(gap) + (" **label conflict**" if gap is not None and gap > LABEL_CONFLICT else ""),
                "yes" if p.originals_together else "no (only via copies)",
                p.originals_merge,
                "yes" if p.confirmed else "**no**",
            ]
        )
    headers = [
        "canonical id",
        "merged real id",
        "formula",
        "space group",
        "sites",
        "E_f (eV/atom)",
        "|ΔE_f|",
        "originals in one group",
        "merge of the originals",
        "strict matcher",
    ]
    return md_table(headers, table)


def _energy(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


@dataclass(frozen=True)
class SubsetComparison:
    naive: Grouping
    ours: Grouping
    formulas: int
    full_differs: int
    """records whose group differs between ``ours`` and the full run restricted to the subset"""
    naive_only: list[RealPair]
    """pairs of real ids the naive grouping merges and ours does not"""
    ours_only: list[RealPair]


def compare_on_subset(
    naive: Grouping, ours: Grouping, full: dict[str, str], formulas: int, structures: Structures
) -> SubsetComparison:
    full_on_subset = Grouping("full run", {uid: full[uid] for uid in ours.group}, 0, 0.0)
    naive_pairs, ours_pairs = real_pairs(naive.group, structures), real_pairs(ours.group, structures)
    naive_keys = {(p.canonical, p.merged) for p in naive_pairs}
    ours_keys = {(p.canonical, p.merged) for p in ours_pairs}
    return SubsetComparison(
        naive,
        ours,
        formulas,
        compare_groupings(ours, full_on_subset)[2],
        [p for p in naive_pairs if (p.canonical, p.merged) not in ours_keys],
        [p for p in ours_pairs if (p.canonical, p.merged) not in naive_keys],
    )


def naive_section(c: SubsetComparison, rows: Sequence[Row], energies: dict[str, float | None]) -> str:
    naive, ours, records = c.naive, c.ours, len(c.ours.group)
    groups_naive, groups_ours, differing = compare_groupings(naive, ours)
    same = "**yes**" if not differing else f"**no**: {differing:,} records in differing groups"
    table = [_grouping_row(g, n) for g, n in ((naive, groups_naive), (ours, groups_ours))]
    table.append(
        [
            "**ratio naive / ours**",
            f"**{ratio(naive.fit_calls, ours.fit_calls)}**",
            ratio(naive.matcher.get("fit", (0, 0.0))[1], ours.matcher.get("fit", (0, 0.0))[1]),
            "",
            "",
            f"**{ratio(naive.seconds, ours.seconds)}**",
            "",
            "",
            "",
        ]
    )
    headers = [
        "grouping",
        "fit calls",
        "fit s",
        "get_rms_dist calls, s",
        "fingerprints, s (separate pass)",
        "total s",
        "groups",
        "copies with their own original",
        "groups with two or more real ids",
    ]
    return (
        f"{records:,} records of the corpus: every record of {c.formulas:,} reduced formulas drawn at "
        "random. Both run in this process, one after the other (after one untimed warm-up fit), with the "
        "same `StructureMatcher` settings and the same priority order (originals before their copies). "
        "Total seconds time the whole grouping; the matcher columns are the time inside those calls; "
        "the fingerprint seconds come from a second, untimed pass over the same fingerprints.\n\n"
        + md_table(headers, table)
        + f"\n\nSame groups: {same} (naive {groups_naive:,} groups, ours {groups_ours:,}). Ours on the "
        "subset vs the full `deduplicate_store` run restricted to the same records: "
        f"{c.full_differs:,} records in differing groups.\n\n"
        + _pairs_only("naive grouping", c.naive_only, rows, energies)
        + "\n\n"
        + _pairs_only("(formula, space group) grouping", c.ours_only, rows, energies)
    )


def _pairs_only(
    name: str, pairs: Sequence[RealPair], rows: Sequence[Row], energies: dict[str, float | None]
) -> str:
    confirmed = sum(p.confirmed for p in pairs)
    title = (
        f"Pairs of real ids merged only by the {name}: {len(pairs)}, of which {confirmed} confirmed one "
        "crystal by the strict matcher."
    )
    return title + ("\n\n" + real_pairs_table(pairs, rows, energies) if pairs else "")


def _grouping_row(g: Grouping, groups: int) -> list[str]:
    fit_calls, fit_s = g.matcher.get("fit", (0, 0.0))
    rms_calls, rms_s = g.matcher.get("get_rms_dist", (0, 0.0))
    copies, recalled, mixed = subset_quality(g)
    return [
        g.name,
        f"{g.fit_calls:,}" + ("" if g.fit_calls == fit_calls else f" (matcher saw {fit_calls:,})"),
        f"{fit_s:.1f}",
        f"{rms_calls:,}, {rms_s:.1f}",
        f"{g.fingerprints[0]:,}, {g.fingerprints[1]:.1f}",
        f"{g.seconds:.1f}",
        f"{groups:,}",
        f"{recalled:,} / {copies:,} ({pct(recalled, copies)})",
        f"{mixed:,}",
    ]


# ------------------------------------------------------------------------------- pre-filter check

_CHECK: dict[str, Candidate] = {}
"""Per worker of ``--check-prefilter``: the store's records, by uid (their reduced cells kept once
computed)."""


def _load_check(store_path: str, uids: list[str]) -> None:
    import pyarrow.compute as pc

    warnings.simplefilter("ignore")
    table = crystal_data.open(store_path).records_table(columns=STRUCTURE_COLUMNS)
    table = table.filter(pc.is_in(table.column("uid"), pa.array(uids)))
    for member in load_members_from(table):
        _CHECK[member.uid] = Candidate(member, DedupConfig())


def _check_pairs(
    pairs: list[tuple[str, str]], fit_all: bool
) -> list[tuple[str | None, bool | None, bool | None]]:
    """(pre-filter's reason, plain fit, fit of the pre-reduced cells) per pair; the fits only where run."""
    config = DedupConfig()
    matcher = make_matcher(config)
    out = []
    for a, b in pairs:
        first, second = _CHECK[a], _CHECK[b]
        reason = rejection(first.reduced, second.reduced, config.ltol, config.angle_tol)
        plain = reduced = None
        if fit_all or reason is not None:
            plain = bool(matcher.fit(first.structure, second.structure))
        if fit_all:
            reduced = bool(
                matcher.fit(first.reduced.structure, second.reduced.structure, skip_structure_reduction=True)
            )
        out.append((reason, plain, reduced))
    return out


def prefilter_check(store_path: Path, within: str, fit_all: bool, workers: int) -> str:
    """Every pair of records sharing a reduced formula (``within="formula"``) or a candidate bucket
    (``"bucket"``), in priority order: the pre-filter's verdict on ``fit(first, second)`` and a plain
    ``StructureMatcher.fit`` (original structures, pymatgen's own reduction) of every pair it rejects;
    with ``fit_all``, of every pair, and the fit of the pre-reduced cells the dedup runs, for
    comparison."""
    store = crystal_data.open(store_path)
    config = DedupConfig()
    groups: dict[object, list[tuple[tuple, str]]] = defaultdict(list)
    for uid, source, source_id, formula, spacegroup in store.records.select(
        "uid", "source", "source_id", "formula", "spacegroup_number"
    ).iter_rows():
        key = formula if within == "formula" else (formula, spacegroup)
        groups[key].append((config.rank(source, source_id), uid))
    pairs = []
    for members in groups.values():
        ordered = [uid for _, uid in sorted(members)]
        pairs.extend((a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :])
    uids = sorted({uid for pair in pairs for uid in pair})
    chunks = [pairs[k : k + 200] for k in range(0, len(pairs), 200)]
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, initializer=_load_check, initargs=(str(store_path), uids)) as pool:
        verdicts = [v for part in pool.map(partial(_check_pairs, fit_all=fit_all), chunks) for v in part]
    seconds = time.perf_counter() - start
    reasons = Counter(reason for reason, _, _ in verdicts if reason is not None)
    wrong = [f"{a} -> {b}" for (a, b), (reason, plain, _) in zip(pairs, verdicts) if reason and plain]
    by_reason = ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items()))
    rows = [
        [f"pairs within a {within}", f"{len(pairs):,}"],
        ["rejected by the pre-filter", f"{sum(reasons.values()):,} ({by_reason})"],
        ["of those, fitted by `StructureMatcher.fit` (must be 0)", f"**{len(wrong)}**"],
    ]
    if fit_all:
        fits = sum(bool(plain) for _, plain, _ in verdicts)
        differ = sum(plain != reduced for _, plain, reduced in verdicts)
        rows += [
            ["pairs `fit` accepts", f"{fits:,}"],
            ["pairs where the fit of the pre-reduced cells differs from the plain fit", f"{differ:,}"],
        ]
    rows.append(["seconds", f"{seconds:.0f} ({workers} workers)"])
    return md_table(["pre-filter check", "value"], rows) + ("\n\n" + "; ".join(wrong) if wrong else "")


# -------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="folder of CIFs with id_prop.csv, or its tarball")
    parser.add_argument("--work", type=Path, help="folder for the corpus and the store")
    parser.add_argument("--copies", type=int, default=2, help="perturbed copies per crystal (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the copies and the subset (default 0)")
    parser.add_argument(
        "--workers", type=int, default=2, help="processes for copies, build, dedup (default 2)"
    )
    parser.add_argument(
        "--subset", type=int, default=3000, help="records of the naive baseline (default 3000)"
    )
    parser.add_argument("--min-records", type=int, default=100_000, help="corpus size to pass (0: no extras)")
    parser.add_argument("--limit-originals", type=int, default=None, help="use only the first N crystals")
    parser.add_argument(
        "--check-tier2", type=int, default=2000, help="tier-2 merges to refit with the matcher (default 2000)"
    )
    parser.add_argument("--out-md", type=Path, default=None, help="also write the report to this file")
    parser.add_argument(
        "--check-prefilter",
        type=Path,
        metavar="STORE",
        help="instead: check the pre-filter against StructureMatcher.fit on every candidate pair of STORE",
    )
    parser.add_argument(
        "--pairs", choices=["formula", "bucket"], default="formula", help="--check-prefilter: pairs within"
    )
    parser.add_argument(
        "--fit-all", action="store_true", help="--check-prefilter: fit every pair, not only rejected ones"
    )
    args = parser.parse_args(argv)
    if args.copies < 1 or args.workers < 1 or args.subset < 1:
        parser.error("--copies, --workers and --subset must be at least 1")
    if args.check_prefilter is None and (args.data is None or args.work is None):
        parser.error("--data and --work are required (unless --check-prefilter)")
    return args


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.simplefilter("ignore")  # pymatgen's CIF and matcher warnings would flood the log
    if args.check_prefilter is not None:
        report = prefilter_check(args.check_prefilter, args.pairs, args.fit_all, args.workers)
        return publish(report, args.out_md)
    args.work.mkdir(parents=True, exist_ok=True)
    phases: list[Phase] = []
    originals = load_originals(resolve_data(args.data, args.work / "data"), args.limit_originals)
    corpus = run_phase(
        "write corpus",
        lambda: make_corpus(originals, args.data.resolve(), args.work / "corpus", args),
        phases,
    )
    energies = {o.source_id: o.energy for o in originals}
    store_path = args.work / "store"
    settings = BuildSettings(source=SOURCE, label_units={LABEL: LABEL_UNIT})
    build = run_phase(
        "build",
        lambda: build_from_cif_folder(
            corpus.folder, store_path, settings, workers=args.workers, overwrite=True, progress=False
        ),
        phases,
    )
    config = DedupConfig()
    dedup = run_phase(
        "dedup", lambda: deduplicate_store(store_path, config, workers=args.workers, progress=False), phases
    )
    store = crystal_data.open(store_path)
    counts = store.manifest["dedup"]["counts"]
    rows, merges, structures = load_rows(store), load_merges(store), Structures(store)
    accuracy = run_phase(
        "accuracy",
        lambda: measure_accuracy(rows, merges, structures, config, args.check_tier2, args.seed),
        phases,
    )

    subset = sample_formulas(rows, args.subset, args.seed)
    members = load_members(store, subset)
    warm_up(members, config)
    naive = run_phase(
        "naive baseline (subset)",
        lambda: naive_grouping(members, [rows[k].formula for k in subset], config),
        phases,
    )
    ours = run_phase(
        "ours (subset)",
        lambda: ours_grouping(members, [(rows[k].formula, rows[k].spacegroup) for k in subset], config),
        phases,
    )
    formulas = len({rows[k].formula for k in subset})
    comparison = compare_on_subset(naive, ours, group_map(rows, merges), formulas, structures)

    report = "\n\n".join(
        [
            f"# crystal_data dedup benchmark: {build.records:,} records, {len(originals):,} real crystals",
            environment(args),
            "## 1. Corpus and build",
            corpus_section(corpus, build, phases[1], args),
            "## 2. Deduplication of the whole store",
            speed_section(dedup, counts, phases[2], args.workers),
            "### Memory",
            memory_section(phases),
            "### Accuracy",
            accuracy_section(accuracy, rows, energies),
            f"## 3. Naive baseline vs ours on a {len(members):,}-record subset",
            naive_section(comparison, rows, energies),
        ]
    )
    return publish(report, args.out_md)


if __name__ == "__main__":
    sys.exit(main())
