"""Materials Project through mp-api's ``MPRester``.

Pages come from ``materials/summary`` with ``_skip``/``_limit``: one ``MPRester`` request per page
(``num_chunks=1``, which also keeps the client off its S3 bulk path), wrapped in our retries and rate
limit on top of the client's own. Each page is stored as the JSON the client returned, with the
database version from the server's heartbeat. The API key comes from ``MP_API_KEY`` and reaches only
the request header: never a log line, a sidecar, a manifest or an error message.

Policy (recorded in ``fetch.json`` and applied again in :func:`records`): deprecated materials are
excluded by default (``deprecated="include"`` keeps them); theoretical ones are kept by default
(``theoretical="exclude"`` drops them). Excluded entries that still arrive become rejections with
the code ``excluded_deprecated`` / ``excluded_theoretical``, so nothing is dropped silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import numpy as np

from crystal_data.errors import RejectedInput
from crystal_data.record import CrystalRecord
from crystal_data.sources.base import FetchOptions, RawRejection, Source
from crystal_data.sources.http import FetchError, RetryableError, redact, with_retries
from crystal_data.sources.jsonapi import scalar_id, zone_records
from crystal_data.sources.landing import RawZone
from crystal_data.sources.paging import FetchReport, Page, fetch_pages
from crystal_data.sources.parsing import atomic_number, finite_or_none, lattice_matrix
from crystal_data.sources.politeness import DEFAULTS, RateLimiter

FIELDS = (
    "material_id",
    "structure",
    "symmetry",
    "formula_pretty",
    "nsites",
    "formation_energy_per_atom",
    "band_gap",
    "energy_above_hull",
    "deprecated",
    "theoretical",
    "last_updated",
)
LABELS = {
    "formation_energy_per_atom": "eV/atom",
    "band_gap": "eV",
    "energy_above_hull": "eV/atom",
}
PAGE_SIZE = 1000
"""MP's ``meta.max_limit``."""
POLICIES = {"deprecated": ("exclude", "include"), "theoretical": ("keep", "exclude")}


class MissingApiKey(RuntimeError):
    """No Materials Project API key was given."""


def policy_of(options: FetchOptions) -> dict[str, str]:
    """The deprecated/theoretical policy from ``options.extra`` (defaults: exclude, keep)."""
    unknown = set(options.extra) - {*POLICIES, "api_key"}
    if unknown:
        raise ValueError(f"MP takes no option {sorted(unknown)}; its options are {sorted(POLICIES)}")
    policy = {"deprecated": "exclude", "theoretical": "keep"}
    for name, allowed in POLICIES.items():
        value = options.extra.get(name, policy[name])
        if value not in allowed:
            raise ValueError(f"MP {name} policy must be one of {allowed}, not {value!r}")
        policy[name] = value
    return policy


def criteria_of(policy: dict[str, str]) -> dict[str, bool]:
    criteria = {}
    if policy["deprecated"] == "exclude":
        criteria["deprecated"] = False
    if policy["theoretical"] == "exclude":
        criteria["theoretical"] = False
    return criteria


def api_key(options: FetchOptions) -> str:
    key = options.extra.get("api_key") or os.environ.get("MP_API_KEY")
    if not key:
        raise MissingApiKey(
            "no Materials Project API key: set MP_API_KEY (get one at https://next-gen.materialsproject.org/api)"
        )
    return key


def fetch(zone: RawZone, options: FetchOptions) -> FetchReport:
    """Fetch ``materials/summary`` pages into ``zone`` (resuming after its last complete page)."""
    from mp_api.client import MPRester

    key = api_key(options)
    politeness = options.politeness or DEFAULTS["mp"]
    endpoint = SOURCE.endpoint(options)
    policy = policy_of(options)
    criteria = criteria_of(policy)
    page_size = options.page_size or PAGE_SIZE
    # not the page size: offsets are absolute, so a fetch may resume with another one
    zone.claim({"endpoint": endpoint, "fields": list(FIELDS), "policy": policy})
    secrets = (key,)

    def connect() -> MPRester:
        try:  # the constructor asks the server's heartbeat for the database version
            return MPRester(
                api_key=key, endpoint=endpoint + "/", use_document_model=False, mute_progress_bars=True
            )
        except Exception as exc:  # requests errors, a heartbeat that is not JSON, MPRestError
            raise _classify(exc, secrets) from None

    limiter = RateLimiter(politeness.requests_per_second)
    with with_retries(connect, politeness, f"MP heartbeat at {endpoint}", secrets) as rester:
        version = rester.db_version or "unknown"
        summary = rester.materials.summary

        def fetch_page(offset: int, limit: int) -> Page:
            params = {**criteria, "_skip": offset, "_limit": limit}

            def call() -> dict:
                limiter.wait()
                try:
                    return summary._query_resource(  # one request; the public search() has no _skip
                        criteria=dict(params),
                        fields=list(FIELDS),
                        num_chunks=1,
                        chunk_size=limit,
                        use_document_model=False,
                        timeout=politeness.timeout_s,
                    )
                except Exception as exc:  # MPRestError, or a body cut short that is not JSON
                    raise _classify(exc, secrets) from None

            data = with_retries(call, politeness, f"MP summary page at {offset}", secrets)
            docs = data.get("data") or []
            meta = data.get("meta") or {}
            total = meta.get("total_doc")
            body = json.dumps({"data": docs, "meta": meta}, sort_keys=True).encode()
            ids = [str(doc.get("material_id")) for doc in docs]
            last = not docs or (total is not None and offset + len(docs) >= int(total))
            url = redact(f"{endpoint}/materials/summary/", secrets)
            return Page(body, ids, last, url, 200, version, _jsonable(params), total)

        return fetch_pages(
            zone,
            fetch_page,
            page_size=page_size,
            politeness=politeness,
            limit=options.limit,
            progress=options.progress,
        )


def _classify(exc: Exception, secrets: tuple[str, ...]) -> Exception:
    """MPRester raises one error type for everything: retry rate limits, server and network
    errors; fail at once on the rest (a bad query, a rejected key)."""
    message = redact(f"{type(exc).__name__}: {exc}", secrets)
    permanent = (
        "status code 400",
        "status code 401",
        "status code 403",
        "status code 404",
        "status code 422",
    )
    if any(code in message for code in permanent) or "API key" in message:
        return FetchError(message)
    return RetryableError(message)


def _jsonable(params: dict) -> dict:
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()}


def records(zone: RawZone) -> Iterator[CrystalRecord | RawRejection]:
    """Canonical records from the stored pages, in page order; each material id once (a repeat is a
    ``repeated_entry`` rejection), never touching the network."""
    policy = zone.spec().get("policy", {"deprecated": "exclude", "theoretical": "keep"})
    return zone_records(
        zone,
        entries_of=lambda data: data["data"],
        entry_id=lambda doc: scalar_id(doc.get("material_id")) if isinstance(doc, dict) else None,
        to_record=lambda doc, source_id, origin, version: _record(doc, source_id, origin, version, policy),
    )


def _record(doc: dict, source_id: str, origin: str, version: str, policy: dict) -> CrystalRecord:
    """Raises :class:`RejectedInput` for an entry the policy excludes or that cannot be a record."""
    if doc.get("deprecated") and policy["deprecated"] == "exclude":
        raise RejectedInput("excluded_deprecated", "deprecated in this database version")
    if doc.get("theoretical") and policy["theoretical"] == "exclude":
        raise RejectedInput("excluded_theoretical", "theoretical (no ICSD match)")
    structure = doc.get("structure")
    if not isinstance(structure, dict):
        raise RejectedInput("missing_structure", "the document has no structure")
    try:
        lattice = lattice_matrix(structure["lattice"]["matrix"])
        numbers, coords = [], []
        for site in structure["sites"]:
            species = site["species"]
            if len(species) != 1 or float(species[0].get("occu", 1)) < 1.0:
                raise RejectedInput("partial_occupancy", f"site {site.get('label', '?')} is disordered")
            numbers.append(atomic_number(species[0]["element"]))
            coords.append([float(x) for x in site["abc"]])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise RejectedInput("malformed_structure", f"{type(exc).__name__}: {exc}") from None
    return CrystalRecord(
        source="mp",
        source_id=source_id,
        lattice=lattice,
        atomic_numbers=np.array(numbers),
        frac_coords=np.array(coords).reshape(-1, 3),
        source_version=version,
        origin=origin,
        labels={name: finite_or_none(doc.get(name)) for name in LABELS},
    )


SOURCE = Source(
    name="mp",
    record_source="mp",
    label_units=LABELS,
    endpoint_env="MP_API_ENDPOINT",
    default_endpoint="https://api.materialsproject.org",
    fetch=fetch,
    records=records,
    description="Materials Project summary documents through mp-api (MP_API_KEY)",
)
