"""OQMD through its OPTIMADE v1 endpoint, ``/optimade/v1/structures`` (docs/sources-oqmd.md).

The reading is generic OPTIMADE (``lattice_vectors``, ``cartesian_site_positions``,
``species_at_sites`` through ``species``); what is OQMD's own, the id and the label attributes, is a
:class:`ProviderFields` mapping. Records come out as ``source="oqmd"``, the same uids as the REST
route, so ``normalize`` keeps one copy when both routes were fetched.

Paging is ``page_limit``/``page_offset``; the stop rule is the REST route's (``links.next`` null or
an empty page). The endpoint is the OQMD host, as for the REST route: ``$OQMD_ENDPOINT``, default
``https://oqmd.org``, with ``/optimade/v1/structures`` appended.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

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

log = logging.getLogger(__name__)

PATH = "/optimade/v1/structures"
PAGE_SIZE = 100
"""Smaller than the REST route's 500: OPTIMADE records are larger, providers cap ``page_limit``
(a capped page loses nothing, see paging.py), and long answers are what time out on OQMD."""
STRUCTURE_FIELDS = (
    "lattice_vectors",
    "cartesian_site_positions",
    "species_at_sites",
    "species",
    "nsites",
    "dimension_types",
)
FULL_CONCENTRATION = 1.0 - 1e-6


@dataclass(frozen=True)
class ProviderFields:
    """A provider's own attributes: its stable entry id and the labels (canonical name -> attribute)."""

    id_attribute: str | None
    labels: dict[str, str]
    label_units: dict[str, str]


OQMD = ProviderFields(
    id_attribute="_oqmd_entry_id",
    labels={
        "formation_energy_per_atom": "_oqmd_delta_e",
        "band_gap": "_oqmd_band_gap",
        "energy_above_hull": "_oqmd_stability",
    },
    label_units={"formation_energy_per_atom": "eV/atom", "band_gap": "eV", "energy_above_hull": "eV/atom"},
)
"""OQMD's ``_oqmd_stability`` is clamped at 0 on this route (the REST ``stability`` is not)."""


def response_fields(provider: ProviderFields) -> list[str]:
    """The attributes to ask for (``id`` and ``type`` always come)."""
    own = [provider.id_attribute] if provider.id_attribute else []
    return [*STRUCTURE_FIELDS, *own, *provider.labels.values()]


def resource_id(resource: object, provider: ProviderFields) -> tuple[str | None, bool]:
    """The provider's entry id as ``source_id``, or the OPTIMADE ``id`` when the attribute is absent;
    the flag says whether it fell back (then uids may not match the provider's other routes)."""
    if not isinstance(resource, dict):
        return None, False
    if provider.id_attribute:
        own = scalar_id(mapping(resource.get("attributes")).get(provider.id_attribute))
        if own is not None:
            return own, False
    return scalar_id(resource.get("id")), provider.id_attribute is not None


def source_version(envelope: dict) -> str:
    """``"optimade 1.1.0"`` from ``meta.api_version`` (``""`` when absent)."""
    api = mapping(envelope.get("meta")).get("api_version")
    return f"optimade {api}" if api else ""


def read_page(data: object, provider: ProviderFields = OQMD) -> Listing:
    """One ``structures`` page (raises ``RetryableError`` when it is not one)."""
    return read_envelope(data, lambda resource: resource_id(resource, provider)[0], source_version)


def site_numbers(attributes: dict) -> list[int]:
    """Atomic numbers of ``species_at_sites`` through ``species``. A species that is a mixture, has a
    vacancy or a concentration below 1 is ``partial_occupancy``; ``X`` is an ``unknown_element``."""
    names = required(attributes, "species_at_sites")
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise RejectedInput("parse_error", "species_at_sites is not a list of names")
    species = attributes.get("species")
    if species is None:  # optional in OPTIMADE: then the names are the chemical symbols
        return [element(name, f"site species {name!r}") for name in names]
    if not isinstance(species, list) or not all(isinstance(s, dict) for s in species):
        raise RejectedInput("parse_error", "species is not a list of objects")
    by_name = {s.get("name"): s for s in species}
    missing = sorted({str(name) for name in names if name not in by_name})
    if missing:
        raise RejectedInput("parse_error", f"species_at_sites names {missing} that species does not define")
    numbers = {name: species_number(by_name[name]) for name in dict.fromkeys(names)}
    return [numbers[name] for name in names]


def species_number(species: dict) -> int:
    """The atomic number of a fully occupied single-element species. Raises :class:`RejectedInput`."""
    name = species.get("name")
    symbols = species.get("chemical_symbols")
    concentration = species.get("concentration")
    if (
        not isinstance(symbols, list)
        or not isinstance(concentration, list)
        or len(symbols) != len(concentration)
    ):
        raise RejectedInput(
            "parse_error", f"species {name!r}: chemical_symbols and concentration do not match"
        )
    if len(symbols) != 1 or symbols[0] == "vacancy":
        raise RejectedInput("partial_occupancy", f"species {name!r} is {symbols} at {concentration}")
    amount = label_value(concentration[0], f"species {name!r} concentration")
    if amount is None or amount < FULL_CONCENTRATION:
        raise RejectedInput("partial_occupancy", f"species {name!r} has concentration {concentration[0]}")
    return element(symbols[0], f"species {name!r}")


def structure_record(
    resource: dict, source_id: str, origin: str, version: str, *, record_source: str, provider: ProviderFields
) -> CrystalRecord:
    """The canonical record of one OPTIMADE structure. Raises :class:`RejectedInput`."""
    attributes = mapping(resource.get("attributes"))
    dimensions = attributes.get("dimension_types")
    if dimensions is not None and dimensions != [1, 1, 1]:
        raise RejectedInput("not_periodic", f"dimension_types is {dimensions}, not periodic in 3D")
    numbers = site_numbers(attributes)
    check_count(attributes, "nsites", len(numbers))
    lattice = float_rows(required(attributes, "lattice_vectors"), "lattice_vectors", rows=3)
    cartesian = float_rows(
        required(attributes, "cartesian_site_positions"), "cartesian_site_positions", rows=len(numbers)
    )
    try:  # cartesian = frac @ lattice (rows are vectors)
        frac = np.linalg.solve(lattice.T, cartesian.T).T
    except np.linalg.LinAlgError:
        raise RejectedInput("degenerate_lattice", "lattice_vectors are singular") from None
    labels = {
        label: label_value(attributes.get(attribute), attribute)
        for label, attribute in provider.labels.items()
    }
    return CrystalRecord(
        source=record_source,
        source_id=source_id,
        lattice=lattice,
        atomic_numbers=np.array(numbers, dtype=np.int64),
        frac_coords=frac.reshape(-1, 3),
        source_version=version,
        origin=origin,
        labels=labels,
    )


def query_params(options: FetchOptions, provider: ProviderFields = OQMD) -> dict[str, str]:
    """The fixed part of every request: ``response_fields`` and the user's OPTIMADE ``filter``."""
    return with_user_filter({"response_fields": ",".join(response_fields(provider))}, options)


def fetch(zone: RawZone, options: FetchOptions) -> FetchReport:
    """Fetch ``structures`` pages into ``zone``, resuming after its last complete page."""
    return fetch_listing(
        zone,
        options,
        url=endpoint_url(SOURCE.endpoint(options), PATH),
        params=query_params(options),
        page_params=lambda offset, limit: {"page_limit": str(limit), "page_offset": str(offset)},
        read=read_page,
        page_size=options.page_size or PAGE_SIZE,
        politeness=options.politeness or DEFAULTS["oqmd-optimade"],
    )


def records(zone: RawZone) -> Iterator[CrystalRecord | RawRejection]:
    """Records (or rejections) of every stored structure, in page order; never touches the network.
    Structures without ``_oqmd_entry_id`` take their OPTIMADE ``id``, with a warning."""
    fell_back = 0

    def source_id(resource: object) -> str | None:
        nonlocal fell_back
        found, fallback = resource_id(resource, OQMD)
        fell_back += fallback
        return found

    yield from zone_records(
        zone,
        entries_of=lambda data: read_page(data).entries,
        entry_id=source_id,
        to_record=partial(structure_record, record_source=SOURCE.record_source, provider=OQMD),
    )
    if fell_back:
        log.warning(
            "%s: %d structures have no %s; their OPTIMADE id is their source_id (uids may not match "
            "the REST route's)",
            zone.dir,
            fell_back,
            OQMD.id_attribute,
        )


SOURCE = Source(
    name="oqmd-optimade",
    record_source="oqmd",
    label_units=OQMD.label_units,
    endpoint_env="OQMD_ENDPOINT",
    default_endpoint="https://oqmd.org",
    fetch=fetch,
    records=records,
    description="OQMD structures through OPTIMADE v1 /optimade/v1/structures (same uids as 'oqmd')",
)
