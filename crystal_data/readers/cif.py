"""CIF text to lattice, atomic numbers and fractional coordinates.

Fast path: gemmi tokenises the file (~0.03 ms) and we read the P1 sites ourselves. Everything the fast
path does not handle with certainty (symmetry operations other than the identity, Cartesian-only
sites, files gemmi cannot tokenise) goes to pymatgen's ``CifParser``, the reference behaviour. Both
paths give the same lattice orientation (pymatgen's ``Lattice.from_parameters``), coordinates wrapped
into [0, 1) and pymatgen's site order (file order, stably sorted by electronegativity then symbol);
``tests/test_cif_reader.py`` proves they agree on real files.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np

from crystal_data.errors import RejectedInput

_OCCUPANCY_TOLERANCE = 1e-3
_FRAC_TOLERANCE = 1e-4
_SYMOP_TAGS = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz")
_P1_NAMES = {"p1", "p 1"}
_DATA_LINE = re.compile(r"^data_", re.MULTILINE)


@dataclass(frozen=True, eq=False)
class ParsedCif:
    lattice: np.ndarray
    atomic_numbers: np.ndarray
    frac_coords: np.ndarray
    parser: str
    """``"gemmi"`` (fast path) or ``"pymatgen"`` (fallback)."""


class _FastPathDeclined(Exception):
    """The fast path cannot decide this file with certainty: use pymatgen."""


def parse_cif(data: bytes) -> ParsedCif:
    """Parse one CIF file's bytes. Raises :class:`RejectedInput` naming the reason."""
    text = _decode(data)
    try:
        return _parse_gemmi(text)
    except _FastPathDeclined:
        return _parse_pymatgen(text)


def _decode(data: bytes) -> str:
    if not data.strip():
        raise RejectedInput("empty_file", "the file is empty")
    nul = data.find(b"\0")
    if nul >= 0:
        raise RejectedInput("binary_file", f"binary content (NUL byte at offset {nul})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedInput(
            "not_utf8", f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    # Some writers (JARVIS-Tools) print a banner line before the first data block.
    match = _DATA_LINE.search(text)
    if match is None:
        raise RejectedInput("parse_error", "no data_ block: not a CIF file")
    return text[match.start() :]


def _parse_gemmi(text: str) -> ParsedCif:
    import gemmi

    try:
        doc = gemmi.cif.read_string(text)
    except Exception as exc:  # gemmi raises RuntimeError/ValueError with a position
        raise _FastPathDeclined(str(exc)) from exc
    if len(doc) != 1:
        names = ", ".join(block.name for block in doc)
        raise RejectedInput(
            "multiple_blocks", f"{len(doc)} data blocks ({names}); one crystal per file expected"
        )
    block = doc[0]
    if block.find_value("_cell_length_a") is None:
        raise _FastPathDeclined("no cell")
    small = gemmi.make_small_structure_from_block(block)
    if not _is_p1(block, small):
        raise _FastPathDeclined("symmetry operations other than the identity")
    sites = small.sites
    if len(sites) == 0:
        raise _FastPathDeclined("no fractional sites")
    numbers = np.fromiter((site.element.atomic_number for site in sites), dtype=np.int64, count=len(sites))
    for site, z in zip(sites, numbers):
        if z == 0:
            raise RejectedInput(
                "unknown_element", f"site {site.label!r}: unknown element {site.type_symbol!r}"
            )
        if site.occ < 1.0 - _OCCUPANCY_TOLERANCE:
            raise RejectedInput(
                "partial_occupancy",
                f"site {site.label!r} has occupancy {site.occ:g} (disorder is not supported)",
            )
    frac = np.array([site.fract.tolist() for site in sites], dtype=np.float64)
    if not np.isfinite(frac).all():
        raise _FastPathDeclined("non-numeric coordinates")
    _snap_thirds(frac)
    _check_formula_sum(block, numbers)
    lattice = _lattice_from_parameters(*_cell_parameters(block))
    order = _pymatgen_site_order(numbers)
    return ParsedCif(lattice, numbers[order], _wrap(frac[order]), "gemmi")


def _pymatgen_site_order(numbers: np.ndarray) -> np.ndarray:
    """pymatgen's ``CifParser`` returns ``get_sorted_structure()``: the file's sites stably sorted by
    ``Site.__lt__`` (electronegativity, then symbol when either is NaN or they are equal). Emulated with
    the same comparison, so even elements without an electronegativity (He, Ne, Ar) land where
    pymatgen puts them."""
    keys = [_SiteKey(*_element_key(int(z))) for z in numbers]
    return np.array(sorted(range(len(numbers)), key=keys.__getitem__), dtype=np.int64)


class _SiteKey:
    __slots__ = ("x", "symbol")

    def __init__(self, x: float, symbol: str):
        self.x, self.symbol = x, symbol

    def __lt__(self, other: _SiteKey) -> bool:
        if self.x < other.x:
            return True
        if self.x > other.x:
            return False
        return self.symbol < other.symbol


@cache
def _element_key(z: int) -> tuple[float, str]:
    from pymatgen.core import Element

    element = Element.from_Z(z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(element.X), element.symbol


def _is_p1(block, small) -> bool:
    for tag in _SYMOP_TAGS:
        ops = list(block.find_values(tag))
        if ops:
            return len(ops) == 1 and _normalise_op(ops[0]) == "x,y,z"
    hm = (small.spacegroup_hm or "").strip().lower()
    number = block.find_value("_symmetry_Int_Tables_number") or block.find_value("_space_group_IT_number")
    return hm in _P1_NAMES or (not hm and number is not None and number.strip() == "1")


def _normalise_op(op: str) -> str:
    import gemmi

    return gemmi.cif.as_string(op).replace(" ", "").lower()


def _check_formula_sum(block, numbers: np.ndarray) -> None:
    """Catch truncated atom loops: the sites must be a whole multiple of ``_chemical_formula_sum``."""
    import gemmi

    raw = block.find_value("_chemical_formula_sum")
    if raw is None or gemmi.cif.is_null(raw):
        return
    from pymatgen.core import Composition

    try:
        declared = Composition(gemmi.cif.as_string(raw)).get_el_amt_dict()
    except Exception:
        return  # an unparseable formula is not evidence of truncation
    found = dict(zip(*np.unique(numbers, return_counts=True)))
    from pymatgen.core import Element

    found_by_symbol = {Element.from_Z(int(z)).symbol: int(c) for z, c in found.items()}
    ratios = {el: found_by_symbol.get(el, 0) / amt for el, amt in declared.items() if amt > 0}
    if set(found_by_symbol) != set(declared) or max(ratios.values()) - min(ratios.values()) > 1e-6:
        raise RejectedInput(
            "composition_mismatch",
            f"sites give {found_by_symbol} but _chemical_formula_sum says {declared} (truncated file?)",
        )


def _cell_parameters(block) -> tuple[float, ...]:
    """The six cell parameters as written (gemmi's ``UnitCell`` silently resets invalid ones)."""
    import gemmi

    tags = ("a", "b", "c", "alpha", "beta", "gamma")
    values = tuple(
        gemmi.cif.as_number(block.find_value(f"_cell_{'length' if len(t) == 1 else 'angle'}_{t}") or "?")
        for t in tags
    )
    lengths, angles = values[:3], values[3:]
    if not all(math.isfinite(v) for v in values) or min(lengths) <= 0 or not all(0 < v < 180 for v in angles):
        shown = ", ".join(f"{t}={v:g}" for t, v in zip(tags, values))
        raise RejectedInput("degenerate_lattice", f"cell parameters {shown} do not form a cell")
    return values


def _lattice_from_parameters(a, b, c, alpha, beta, gamma) -> np.ndarray:
    from pymatgen.core import Lattice

    with np.errstate(invalid="ignore", divide="ignore"):
        return np.array(Lattice.from_parameters(a, b, c, alpha, beta, gamma).matrix, dtype=np.float64)


def _snap_thirds(frac: np.ndarray) -> None:
    """Round coordinates printed with few digits (0.3333) to 1/3 and 2/3, exactly as pymatgen's
    ``CifParser`` does (relative tolerance 1e-4), so both paths give identical coordinates."""
    for ideal in (1 / 3, 2 / 3):
        frac[np.abs(frac / ideal - 1.0) <= _FRAC_TOLERANCE] = ideal


def _wrap(frac: np.ndarray) -> np.ndarray:
    wrapped = frac - np.floor(frac)
    wrapped[wrapped >= 1.0] = 0.0  # -1e-17 wraps to 1.0 in floating point
    return wrapped


def _parse_pymatgen(text: str) -> ParsedCif:
    from pymatgen.io.cif import CifParser

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structures = CifParser.from_str(text).parse_structures(primitive=False, on_error="raise")
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise RejectedInput("parse_error", f"pymatgen could not read it: {message[:300]}") from exc
    if len(structures) != 1:
        raise RejectedInput("multiple_blocks", f"{len(structures)} structures; one crystal per file expected")
    structure = structures[0]
    if not structure.is_ordered:
        raise RejectedInput("partial_occupancy", f"disordered sites ({structure.composition}); not supported")
    numbers = np.array([getattr(site.specie, "Z", 0) for site in structure], dtype=np.int64)
    if (numbers == 0).any():
        bad = structure[int(np.argmax(numbers == 0))].specie
        raise RejectedInput("unknown_element", f"unknown element {str(bad)!r}")
    return ParsedCif(
        np.array(structure.lattice.matrix, dtype=np.float64),
        numbers,
        _wrap(structure.frac_coords),
        "pymatgen",
    )
