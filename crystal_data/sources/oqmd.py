"""OQMD through its REST API, ``/oqmdapi/formationenergy`` (docs/sources-oqmd.md).

Pages are asked with ``limit``/``offset`` (Django REST Framework's limit-offset pagination) and only
the fields below. The fetch stops when ``links.next`` is null or a page comes back empty, never on
``meta.more_data_available`` (true whenever a *previous* page exists, so it is true on the last page
too). Our own httpx client rather than ``qmpy-rester``: that one blocks on ``input()``, has no
timeout or retry and returns ``None`` on any error.

Site strings ``"Au @ 0 0 0"`` hold *fractional* coordinates printed with about three decimals
(``0.333``), so symmetry needs a loose tolerance (the store's default symprec of 0.1 Å).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from crystal_data.errors import RejectedInput
from crystal_data.record import CrystalRecord
from crystal_data.sources.base import FetchOptions, RawRejection, Source
from crystal_data.sources.jsonapi import (
    Listing,
    check_count,
    element,
    endpoint_url,
    fetch_listing,
    float_rows,
    label_value,
    mapping,
    read_envelope,
    required,
    scalar_id,
    with_user_filter,
    zone_records,
)
from crystal_data.sources.landing import RawZone
from crystal_data.sources.paging import FetchReport
from crystal_data.sources.politeness import DEFAULTS

PATH = "/oqmdapi/formationenergy"
PAGE_SIZE = 500
"""Records per request. The server's default is 50 (the "only 50 structures" of qmpy#149)."""
FIELDS = (
    # read by records()
    "entry_id",
    "unit_cell",
    "sites",
    "natoms",
    "delta_e",
    "band_gap",
    "stability",
    "duplicate_entry_id",
    # kept in the raw zone for cross-checks (OQMD's space group, ICSD origin); a few bytes each
    "name",
    "spacegroup",
    "prototype",
    "icsd_id",
)
LABEL_FIELDS = {
    "formation_energy_per_atom": "delta_e",
    "band_gap": "band_gap",
    "energy_above_hull": "stability",
}
"""Canonical label -> OQMD field. OQMD's ``stability`` is negative for entries on the hull (their
distance to the hull of the others); ``energy_above_hull`` clamps it at 0 so that it means what it
means for Materials Project and OQMD's OPTIMADE route (which clamps too). The raw pages keep it."""
LABEL_UNITS = {"formation_energy_per_atom": "eV/atom", "band_gap": "eV", "energy_above_hull": "eV/atom"}


def entry_id(entry: object) -> str | None:
    """``str(entry_id)``, or ``None`` when the entry has none."""
    return scalar_id(entry.get("entry_id")) if isinstance(entry, dict) else None


def source_version(envelope: dict) -> str:
    """``"oqmd 1.0, api 1.0"`` from ``links.base_url.meta._oqmd_version`` and ``meta.api_version``;
    either part is left out when the server does not send it (``""`` when neither)."""
    database = mapping(mapping(mapping(envelope.get("links")).get("base_url")).get("meta")).get(
        "_oqmd_version"
    )
    api = mapping(envelope.get("meta")).get("api_version")
    parts = [f"oqmd {database}" if database else "", f"api {api}" if api else ""]
    return ", ".join(part for part in parts if part)


def read_page(data: object) -> Listing:
    """One ``formationenergy`` list page (raises ``RetryableError`` when it is not one)."""
    return read_envelope(data, entry_id, source_version)


def parse_site(text: object) -> tuple[int, list[float]]:
    """``"Au @ 0 0 0.5"`` -> ``(79, [0.0, 0.0, 0.5])`` (fractional). Raises :class:`RejectedInput`."""
    if not isinstance(text, str):
        raise RejectedInput("parse_error", f"site {text!r} is not a string")
    symbol, at, rest = text.partition("@")
    coords = rest.split()
    if not at or not symbol.strip() or len(coords) != 3:
        raise RejectedInput("parse_error", f"site {text!r} is not 'El @ a b c'")
    try:
        frac = [float(value) for value in coords]
    except ValueError:
        raise RejectedInput("parse_error", f"site {text!r}: coordinates are not numbers") from None
    return element(symbol.strip(), f"site {text!r}"), frac


def _labels(entry: dict) -> dict[str, float | None]:
    labels = {label: label_value(entry.get(field), field) for label, field in LABEL_FIELDS.items()}
    if labels["energy_above_hull"] is not None:
        labels["energy_above_hull"] = max(0.0, labels["energy_above_hull"])
    return labels


def entry_record(entry: dict, source_id: str, origin: str, version: str) -> CrystalRecord:
    """The canonical record of one entry. Raises :class:`RejectedInput` for a malformed one."""
    lattice = float_rows(required(entry, "unit_cell"), "unit_cell", rows=3)
    sites = required(entry, "sites")
    if not isinstance(sites, list):
        raise RejectedInput("parse_error", f"sites is {type(sites).__name__}, not a list")
    check_count(entry, "natoms", len(sites))
    parsed = [parse_site(site) for site in sites]
    return CrystalRecord(
        source=SOURCE.record_source,
        source_id=source_id,
        lattice=lattice,
        atomic_numbers=np.array([z for z, _ in parsed], dtype=np.int64),
        frac_coords=np.array([frac for _, frac in parsed], dtype=np.float64).reshape(-1, 3),
        source_version=version,
        origin=origin,
        labels=_labels(entry),
        source_duplicate_of=scalar_id(entry.get("duplicate_entry_id")),
    )


def query_params(options: FetchOptions) -> dict[str, str]:
    """The fixed part of every request: ``fields`` and the user's ``filter`` (``options.extra``)."""
    return with_user_filter({"fields": ",".join(FIELDS)}, options)


def fetch(zone: RawZone, options: FetchOptions) -> FetchReport:
    """Fetch ``formationenergy`` pages into ``zone``, resuming after its last complete page."""
    return fetch_listing(
        zone,
        options,
        url=endpoint_url(SOURCE.endpoint(options), PATH),
        params=query_params(options),
        page_params=lambda offset, limit: {"limit": str(limit), "offset": str(offset)},
        read=read_page,
        page_size=options.page_size or PAGE_SIZE,
        politeness=options.politeness or DEFAULTS["oqmd"],
    )


def records(zone: RawZone) -> Iterator[CrystalRecord | RawRejection]:
    """Records (or rejections) of every stored entry, in page order; never touches the network."""
    return zone_records(
        zone, entries_of=lambda data: read_page(data).entries, entry_id=entry_id, to_record=entry_record
    )


SOURCE = Source(
    name="oqmd",
    record_source="oqmd",
    label_units=LABEL_UNITS,
    endpoint_env="OQMD_ENDPOINT",
    default_endpoint="https://oqmd.org",
    fetch=fetch,
    records=records,
    description="OQMD formation energies and structures through the REST API /oqmdapi/formationenergy",
)
