"""A loopback OQMD: ``/oqmdapi/formationenergy`` (REST) and ``/optimade/v1/structures`` (OPTIMADE v1),
in the envelopes of docs/sources.md §2.2/§2.3, over one database of entries.

The database holds the real MgAu record and the two real He cells of sources.md, then textbook cells
(rock salt, diamond, fcc, bcc, zinc blende, perovskite, wurtzite, rutile) with lattice constants
stretched by entry, and a few malformed entries. Sites are printed like OQMD's (three decimals).
"""

from __future__ import annotations

import math
from collections import Counter
from urllib.parse import urlencode

import numpy as np

from tests.upstream import Reply, Request, Upstream

REST_PATH = "/oqmdapi/formationenergy"
OPTIMADE_PATH = "/optimade/v1/structures"
OQMD_VERSION = "1.6"

MGAU = {
    "name": "MgAu",
    "entry_id": 10777,
    "calculation_id": 5558,
    "icsd_id": 58538,
    "formationenergy_id": 4062315,
    "duplicate_entry_id": 10777,
    "composition": "Au1 Mg1",
    "composition_generic": "AB",
    "prototype": "CsCl",
    "spacegroup": "Pm-3m",
    "volume": 35.3707,
    "ntypes": 2,
    "natoms": 2,
    "unit_cell": [[3.282573, 0.0, 0.0], [0.0, 3.282573, 0.0], [0.0, 0.0, 3.282573]],
    "sites": ["Au @ 0 0 0", "Mg @ 0.5 0.5 0.5"],
    "band_gap": 0.0,
    "delta_e": -0.615378534583335,
    "stability": 0.001037924999999995,
    "fit": "standard",
    "calculation_label": "static",
}
HE_HEX = {
    "entry_id": 8085,
    "icsd_id": 43426,
    "unit_cell": [[2.386049, 4.1e-05, 0.0], [-1.19299, 2.066025, 0.0], [0.0, 0.0, 3.892988]],
    "sites": ["He @ 0.333 0.667 0.25", "He @ 0.667 0.333 0.75"],
}
HE_FCC = {
    "entry_id": 4177,
    "icsd_id": 22384,
    "unit_cell": [[1.704771, -1.704771, 0.0], [-1.704771, 0.0, -1.704771], [1.704771, 1.704771, 0.0]],
    "sites": ["He @ 0 0 0"],
}

# name, prototype, space group, lattice (rows) for a = 1 (c/a folded in), fractional sites
_FCC = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
_HEX = [[1, 0, 0], [-0.5, math.sqrt(3) / 2, 0]]
PROTOTYPES: list[tuple[str, str, str, float, list, list[tuple[str, list[float]]]]] = [
    ("NaCl", "NaCl", "Fm-3m", 5.64, np.eye(3).tolist(), [("Na", p) for p in _FCC] + [
        ("Cl", (np.array(p) + [0.5, 0, 0]).tolist()) for p in _FCC
    ]),
    ("Si", "C", "Fd-3m", 5.43, [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], [
        ("Si", [0, 0, 0]), ("Si", [0.25, 0.25, 0.25])
    ]),
    ("Cu", "Cu", "Fm-3m", 3.61, [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], [("Cu", [0, 0, 0])]),
    ("Fe", "W", "Im-3m", 2.87, np.eye(3).tolist(), [("Fe", [0, 0, 0]), ("Fe", [0.5, 0.5, 0.5])]),
    ("ZnS", "ZnS", "F-43m", 5.41, np.eye(3).tolist(), [("Zn", p) for p in _FCC] + [
        ("S", (np.array(p) + 0.25).tolist()) for p in _FCC
    ]),
    ("SrTiO3", "CaTiO3", "Pm-3m", 3.905, np.eye(3).tolist(), [
        ("Sr", [0, 0, 0]), ("Ti", [0.5, 0.5, 0.5]),
        ("O", [0.5, 0.5, 0]), ("O", [0.5, 0, 0.5]), ("O", [0, 0.5, 0.5]),
    ]),
    ("ZnO", "ZnO", "P6_3mc", 3.25, _HEX + [[0, 0, 5.21 / 3.25]], [
        ("Zn", [1 / 3, 2 / 3, 0]), ("Zn", [2 / 3, 1 / 3, 0.5]),
        ("O", [1 / 3, 2 / 3, 0.382]), ("O", [2 / 3, 1 / 3, 0.882]),
    ]),
    ("TiO2", "TiO2", "P4_2/mnm", 4.594, [[1, 0, 0], [0, 1, 0], [0, 0, 2.959 / 4.594]], [
        ("Ti", [0, 0, 0]), ("Ti", [0.5, 0.5, 0.5]),
        ("O", [0.305, 0.305, 0]), ("O", [0.695, 0.695, 0]),
        ("O", [0.805, 0.195, 0.5]), ("O", [0.195, 0.805, 0.5]),
    ]),
]  # fmt: skip
FIRST_GENERATED_ID = 100000


def oqmd_number(x: float) -> str:
    """Coordinates as OQMD prints them: three decimals, trailing zeros dropped (``0.333``, ``0.5``, ``0``)."""
    text = f"{x % 1.0:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "1") else text


def full_entry(
    entry_id: int,
    name: str,
    prototype: str,
    spacegroup: str,
    lattice: list,
    sites: list[tuple[str, list]],
    k: int,
) -> dict:
    """A REST record with every field, in the real record's key order."""
    counts = Counter(symbol for symbol, _ in sites)
    return {
        "name": name,
        "entry_id": entry_id,
        "calculation_id": 500000 + k,
        "icsd_id": 60000 + k if k % 3 else None,
        "formationenergy_id": 4000000 + k,
        "duplicate_entry_id": entry_id - 7 if k % 10 == 9 else entry_id,
        "composition": " ".join(f"{el}{n}" for el, n in sorted(counts.items())),
        "composition_generic": "".join("ABCDEFGHIJ"[i] for i in range(len(counts))),
        "prototype": prototype,
        "spacegroup": spacegroup,
        "volume": round(abs(float(np.linalg.det(lattice))), 4),
        "ntypes": len(counts),
        "natoms": len(sites),
        "unit_cell": [[round(x, 6) for x in row] for row in lattice],
        "sites": [f"{symbol} @ " + " ".join(oqmd_number(x) for x in frac) for symbol, frac in sites],
        "band_gap": 0.0 if k % 2 else round(0.1 * (k % 40), 3),
        "delta_e": round(-0.05 - 0.003 * k, 6),
        "stability": round(0.002 * (k % 25) - 0.01, 6),  # negative: on the hull
        "fit": "standard",
        "calculation_label": "static",
    }


def generated(count: int) -> list[dict]:
    entries = []
    for k in range(count):
        name, prototype, spacegroup, a, cell, sites = PROTOTYPES[k % len(PROTOTYPES)]
        lattice = (np.array(cell, dtype=float) * a * (1 + 0.002 * k)).tolist()
        entries.append(full_entry(FIRST_GENERATED_ID + 7 * k, name, prototype, spacegroup, lattice, sites, k))
    return entries


def real_entries() -> list[dict]:
    """MgAu verbatim; the He cells with the other fields filled in."""
    he_hex = {**full_entry(8085, "He", "Mg", "P6_3/mmc", HE_HEX["unit_cell"], [], 1), **HE_HEX}
    he_fcc = {**full_entry(4177, "He", "Cu", "Fm-3m", HE_FCC["unit_cell"], [], 2), **HE_FCC}
    he_hex.update(natoms=2, composition="He2", ntypes=1)
    he_fcc.update(natoms=1, composition="He1", ntypes=1)
    return [dict(MGAU), he_hex, he_fcc]


MALFORMED_IDS = {
    "900001": "parse_error",
    "900002": "unknown_element",
    "900003": "missing_field",
    "900004": "parse_error",
    "900005": "composition_mismatch",
    "900006": "parse_error",
}


def malformed_entries() -> list[dict]:
    """One entry per way an OQMD record can be broken; the last has no ``entry_id`` at all."""
    base = dict(MGAU)
    return [
        {**base, "entry_id": 900001, "duplicate_entry_id": 900001, "sites": ["Au 0 0 0", "Mg @ 0.5 0.5 0.5"]},
        {
            **base,
            "entry_id": 900002,
            "duplicate_entry_id": 900002,
            "sites": ["Au @ 0 0 0", "Xx @ 0.5 0.5 0.5"],
        },
        {**base, "entry_id": 900003, "duplicate_entry_id": 900003, "unit_cell": None},
        {**base, "entry_id": 900004, "duplicate_entry_id": 900004, "delta_e": "n/a"},
        {**base, "entry_id": 900005, "duplicate_entry_id": 900005, "natoms": 3},
        {**base, "entry_id": 900006, "duplicate_entry_id": 900006, "unit_cell": [[1, 0, 0], [0, 1, 0]]},
        {k: v for k, v in base.items() if k != "entry_id"},
    ]


def database(n_generated: int = 300, malformed: bool = True) -> list[dict]:
    """Real entries first, then generated ones with the malformed ones spread through the middle."""
    entries = real_entries() + generated(n_generated)
    if malformed:
        for k, bad in enumerate(malformed_entries()):
            entries.insert(40 + 37 * k, bad)
    return entries


def good_ids(entries: list[dict]) -> set[str]:
    """The ids that must become records."""
    return {
        str(e["entry_id"]) for e in entries if "entry_id" in e and str(e["entry_id"]) not in MALFORMED_IDS
    }


# ------------------------------------------------------------------------------------------ OPTIMADE
def optimade_resource(entry: dict) -> dict:
    """The OPTIMADE v1 resource of a REST entry: Cartesian positions from the same fractional sites."""
    lattice = np.array(entry["unit_cell"], dtype=float)
    symbols = [site.split("@")[0].strip() for site in entry["sites"]]
    frac = np.array([[float(x) for x in site.split("@")[1].split()] for site in entry["sites"]])
    elements = sorted(set(symbols))
    return {
        "id": str(entry["formationenergy_id"]),
        "type": "structures",
        "attributes": {
            "chemical_formula_reduced": entry["name"],
            "elements": elements,
            "nelements": len(elements),
            "nsites": len(symbols),
            "lattice_vectors": lattice.tolist(),
            "cartesian_site_positions": (frac @ lattice).tolist(),
            "species_at_sites": symbols,
            "species": [{"name": el, "chemical_symbols": [el], "concentration": [1.0]} for el in elements],
            "dimension_types": [1, 1, 1],
            "nperiodic_dimensions": 3,
            "structure_features": [],
            "last_modified": "2023-06-01T00:00:00Z",
            "_oqmd_entry_id": entry["entry_id"],
            "_oqmd_calculation_id": entry["calculation_id"],
            "_oqmd_icsd_id": entry["icsd_id"],
            "_oqmd_band_gap": entry["band_gap"],
            "_oqmd_delta_e": entry["delta_e"],
            "_oqmd_stability": max(0.0, entry["stability"]),  # clamped on this route
            "_oqmd_prototype": entry["prototype"],
            "_oqmd_spacegroup": entry["spacegroup"],
            "_oqmd_natoms": entry["natoms"],
            "_oqmd_volume": entry["volume"],
        },
    }


def _species(resource: dict, species: list[dict], names: list[str] | None = None) -> dict:
    attributes = dict(resource["attributes"])
    attributes["species"] = species
    if names is not None:
        attributes["species_at_sites"] = names
    return {**resource, "attributes": attributes}


OPTIMADE_REJECTED = {"910001": "partial_occupancy", "910002": "partial_occupancy",
                     "910003": "partial_occupancy", "910004": "unknown_element"}  # fmt: skip


def optimade_structures(n_generated: int = 300) -> list[dict]:
    """Valid entries as OPTIMADE resources, plus a disordered, a 90 %-occupied, a vacancy and an ``X``
    species, and one structure without ``_oqmd_entry_id`` (its ``id`` is ``"oqmd-fallback"``)."""
    resources = [optimade_resource(e) for e in real_entries() + generated(n_generated)]
    mgau = optimade_resource(MGAU)

    def variant(entry_id: int, species: list[dict], names: list[str]) -> dict:
        resource = _species(mgau, species, names)
        resource["attributes"]["_oqmd_entry_id"] = entry_id
        return resource

    def one(name: str, symbols: list[str], concentration: list[float]) -> dict:
        return {"name": name, "chemical_symbols": symbols, "concentration": concentration}

    au = one("Au", ["Au"], [1.0])
    odd = [
        variant(910001, [au, one("MgAl", ["Mg", "Al"], [0.5, 0.5])], ["Au", "MgAl"]),
        variant(910002, [au, one("Mg", ["Mg"], [0.9])], ["Au", "Mg"]),
        variant(910003, [au, one("Mgv", ["Mg", "vacancy"], [0.8, 0.2])], ["Au", "Mgv"]),
        variant(910004, [au, one("X", ["X"], [1.0])], ["Au", "X"]),
    ]
    fallback = optimade_resource(MGAU)
    fallback["id"] = "oqmd-fallback"
    del fallback["attributes"]["_oqmd_entry_id"]
    for k, resource in enumerate([*odd, fallback]):
        resources.insert(50 + 41 * k, resource)
    return resources


# ------------------------------------------------------------------------------------------ server
def reset(server: Upstream, routes: dict) -> Upstream:
    """``server`` serving only ``routes``, with an empty request log (no fault may be left over)."""
    assert server.pending_faults() == 0, "a fault queued by an earlier test was never consumed"
    server.routes.clear()
    server.routes.update(routes)
    server.requests.clear()
    return server


class FakeOqmd:
    """The routes of a loopback OQMD. ``max_limit`` caps page sizes (DRF ``max_limit``);
    ``omit_next`` leaves ``next`` out of ``links`` (then only an empty page ends a fetch)."""

    def __init__(
        self,
        entries: list[dict] | None = None,
        structures: list[dict] | None = None,
        max_limit: int = 10_000,
        omit_next: bool = False,
    ):
        self.entries = entries if entries is not None else database()
        self.structures = structures if structures is not None else optimade_structures()
        self.max_limit = max_limit
        self.omit_next = omit_next

    def routes(self) -> dict:
        return {REST_PATH: self.rest, OPTIMADE_PATH: self.optimade}

    # ------------------------------------------------------------------ REST
    def rest(self, request: Request) -> Reply:
        try:
            matches = [e for e in self.entries if _rest_filter(request.query.get("filter"))(e)]
        except ValueError as exc:
            return Reply.json({"detail": str(exc)}, status=400)
        limit = min(request.int_param("limit", 50), self.max_limit)
        offset = request.int_param("offset", 0)
        page = matches[offset : offset + limit]
        fields = request.query.get("fields")
        if fields:
            wanted = fields.split(",")
            page = [{k: v for k, v in e.items() if k in wanted} for e in page]
        url = request.base_url + REST_PATH
        nxt = _link(url, request.query, limit, offset + limit) if offset + limit < len(matches) else None
        prev = None
        if offset > 0:
            prev = _link(url, request.query, limit, offset - limit if offset - limit > 0 else None)
        links = {
            "next": nxt,
            "previous": prev,
            "base_url": {"href": request.base_url + "/oqmdapi", "meta": {"_oqmd_version": OQMD_VERSION}},
        }
        if self.omit_next:
            del links["next"]
        return Reply.json(
            {
                "links": links,
                "resource": {},
                "data": page,
                "meta": {
                    "query": {"representation": "/formationenergy?" + urlencode(request.query)},
                    "api_version": "1.0",
                    "time_stamp": "2024-01-01 00:00:00",
                    "data_returned": len(page),
                    "data_available": len(matches),
                    "comments": "",
                    "query_tree": "",
                    "more_data_available": nxt is not None or prev is not None,
                },
                "response_message": "OK",
            }
        )

    def rest_page(self, offset: int, limit: int, fields: str) -> Reply:
        """The reply the REST route gives for one page (for a ``replace`` fault)."""
        query = {"limit": str(limit), "offset": str(offset), "fields": fields}
        return self.rest(Request("GET", REST_PATH, query, {}, "http://127.0.0.1"))

    # ------------------------------------------------------------------ OPTIMADE
    def optimade(self, request: Request) -> Reply:
        try:
            matches = [s for s in self.structures if _optimade_filter(request.query.get("filter"))(s)]
        except ValueError as exc:
            return Reply.json({"errors": [{"status": "400", "detail": str(exc)}]}, status=400)
        limit = min(request.int_param("page_limit", 20), self.max_limit)
        offset = request.int_param("page_offset", 0)
        page = matches[offset : offset + limit]
        fields = request.query.get("response_fields")
        if fields:
            wanted = fields.split(",")
            page = [
                {**s, "attributes": {k: v for k, v in s["attributes"].items() if k in wanted}} for s in page
            ]
        more = offset + limit < len(matches)
        url = request.base_url + OPTIMADE_PATH
        links = {"next": _link(url, request.query, limit, offset + limit, "page_") if more else None}
        if self.omit_next:
            del links["next"]
        return Reply.json(
            {
                "data": page,
                "links": links,
                "meta": {
                    "api_version": "1.1.0",
                    "query": {"representation": "/structures?" + urlencode(request.query)},
                    "data_returned": len(matches),
                    "data_available": len(self.structures),
                    "more_data_available": more or offset > 0,
                    "provider": {"prefix": "oqmd", "name": "OQMD", "description": "fake"},
                    "time_stamp": "2024-01-01T00:00:00Z",
                },
            }
        )


def _link(url: str, query: dict, limit: int, offset: int | None, prefix: str = "") -> str:
    query = {**query, f"{prefix}limit": str(limit)}
    query.pop(f"{prefix}offset", None)
    if offset is not None:
        query[f"{prefix}offset"] = str(offset)
    return url + "?" + urlencode(query)


def _rest_filter(expression: str | None):
    """``element=X`` terms joined by ``AND`` (enough of OQMD's filter language for the tests)."""
    if not expression:
        return lambda entry: True
    wanted = []
    for term in expression.split(" AND "):
        key, _, value = term.partition("=")
        if key.strip() != "element":
            raise ValueError(f"unsupported filter term {term!r}")
        wanted.append(value.strip())
    return lambda entry: all(
        any(s.split("@")[0].strip() == el for s in entry.get("sites") or []) for el in wanted
    )


def _optimade_filter(expression: str | None):
    """``elements HAS "X"`` only."""
    if not expression:
        return lambda resource: True
    prefix = "elements HAS "
    if not expression.startswith(prefix):
        raise ValueError(f"unsupported filter {expression!r}")
    element = expression[len(prefix) :].strip('"')
    return lambda resource: element in resource["attributes"].get("elements", [])
