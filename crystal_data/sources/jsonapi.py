"""What the paged JSON clients share: fetching an offset-paged list endpoint into the landing zone
(OQMD REST and OPTIMADE), and reading stored pages back as records, each upstream entry exactly once
(those two and Materials Project).

Offsets are computed here; ``links.next`` is read only for being null. The pager resumes from stored
offsets, and a ``next`` URL built behind a proxy can name ``http://`` for an ``https://`` request.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from crystal_data.errors import RejectedInput
from crystal_data.record import CrystalRecord
from crystal_data.sources.base import FetchOptions, RawRejection
from crystal_data.sources.http import HttpClient, JsonResponse, RetryableError
from crystal_data.sources.landing import RawZone
from crystal_data.sources.paging import FetchReport, Page, fetch_pages
from crystal_data.sources.parsing import atomic_number
from crystal_data.sources.politeness import Politeness

EXTRA_OPTIONS = frozenset({"filter"})


@dataclass(frozen=True)
class Listing:
    """One page of a list endpoint, read from its envelope."""

    entries: list
    ids: list[str]
    """One per entry (``""`` for an entry without an id), so the pager's offsets stay exact."""
    last: bool
    """The envelope says nothing follows (``links.next`` is null)."""
    source_version: str
    total: int | None


ReadPage = Callable[[object], Listing]
"""Reads a parsed response body; raises :class:`~crystal_data.sources.http.RetryableError` when it is
not a list envelope (asking again may help; if it keeps happening the fetch fails loudly)."""
EntryId = Callable[[object], str | None]
ToRecord = Callable[[dict, str, str, str], CrystalRecord]
"""``to_record(entry, source_id, origin, source_version)``; raises :class:`RejectedInput`."""


def read_envelope(data: object, entry_id: EntryId, version: Callable[[dict], str]) -> Listing:
    """A ``{"links": {"next": ...}, "data": [...], "meta": {...}}`` page (OQMD REST and OPTIMADE).

    ``last`` only when ``links.next`` is present and null; ``meta.more_data_available`` is ignored
    (OQMD sets it whenever a previous page exists). A missing ``next`` is not an end: the pager then
    stops on the first empty page."""
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("data"), list)
        or not isinstance(data.get("links"), dict)
    ):
        keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        raise RetryableError(f"not a list envelope with a 'data' list and a 'links' object: {keys}")
    entries = data["data"]
    links = data["links"]
    total = mapping(data.get("meta")).get("data_available")
    return Listing(
        entries,
        [entry_id(entry) or "" for entry in entries],
        "next" in links and links["next"] is None,
        version(data),
        total if isinstance(total, int) and not isinstance(total, bool) else None,
    )


def mapping(value: object) -> dict:
    """``value`` when it is a JSON object, else ``{}`` (for optional nested metadata)."""
    return value if isinstance(value, dict) else {}


def endpoint_url(base: str, path: str) -> str:
    """``base`` + ``path``, unless ``base`` already ends with ``path`` (a full URL given as endpoint)."""
    base = base.rstrip("/")
    return base if base.endswith(path) else base + path


def user_filter(options: FetchOptions) -> str | None:
    """The ``filter`` of ``options.extra``; unknown extra options are an error, not ignored."""
    unknown = set(options.extra) - EXTRA_OPTIONS
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}; this source takes {sorted(EXTRA_OPTIONS)}")
    return options.extra.get("filter") or None


def fetch_listing(
    zone: RawZone,
    options: FetchOptions,
    *,
    url: str,
    params: dict[str, str],
    page_params: Callable[[int, int], dict[str, str]],
    read: ReadPage,
    page_size: int,
    politeness: Politeness,
) -> FetchReport:
    """Fetch ``url`` page by page into ``zone`` (resuming after its last complete page).

    ``params`` are the fixed query (recorded in ``fetch.json``: a zone holds one query);
    ``page_params(offset, limit)`` gives the paging parameters of one request. The page size is not
    part of the query: offsets are absolute, so a fetch may resume with another page size."""
    zone.claim({"url": url, "params": dict(params)})

    with HttpClient(politeness) as client:

        def check(response: JsonResponse) -> None:
            read(response.data)

        def fetch_page(offset: int, limit: int) -> Page:
            query = {**params, **page_params(offset, limit)}
            response = client.get_json(url, query, check=check)
            listing = read(response.data)
            return Page(
                response.body,
                listing.ids,
                listing.last,
                response.url,
                response.status,
                listing.source_version,
                query,
                listing.total,
            )

        return fetch_pages(
            zone,
            fetch_page,
            page_size=page_size,
            politeness=politeness,
            limit=options.limit,
            progress=options.progress,
        )


def zone_records(
    zone: RawZone, *, entries_of: Callable[[object], list], entry_id: EntryId, to_record: ToRecord
) -> Iterator[CrystalRecord | RawRejection]:
    """Records from the stored pages, in page order; reads only ``zone``, never the network.

    Each entry gives one item, so records + rejections = stored entries. An id seen before (pages
    that overlapped because the upstream changed while it was paged) is a ``repeated_entry``
    rejection: the first copy is kept. An entry without an id gets its origin as ``source_id``."""
    seen: set[str] = set()
    for page in zone.pages():
        name = page.body_path.relative_to(zone.root).as_posix()
        version = page.meta["source_version"]
        for k, entry in enumerate(entries_of(page.json())):
            origin = f"{name}#{k}"
            source_id = entry_id(entry)
            if source_id is None:
                yield RawRejection(origin, "missing_id", "the entry has no id", origin)
                continue
            if source_id in seen:
                reason = f"entry {source_id} appeared earlier in this fetch; the first copy is kept"
                yield RawRejection(source_id, "repeated_entry", reason, origin)
                continue
            seen.add(source_id)
            yield _convert(entry, source_id, origin, version, to_record)


def _convert(
    entry: object, source_id: str, origin: str, version: str, to_record: ToRecord
) -> CrystalRecord | RawRejection:
    if not isinstance(entry, dict):
        return RawRejection(source_id, "parse_error", f"entry {source_id} is not an object", origin)
    try:
        return to_record(entry, source_id, origin, version)
    except RejectedInput as exc:
        return RawRejection(source_id, exc.code, f"entry {source_id}: {exc.reason}", origin)
    except Exception as exc:  # a shape no check foresaw must not stop a million-entry read
        reason = f"entry {source_id}: {type(exc).__name__}: {exc}"[:500]
        return RawRejection(source_id, "internal_error", reason, origin)


def with_user_filter(params: dict[str, str], options: FetchOptions) -> dict[str, str]:
    """``params`` plus the user's ``filter`` (``options.extra``) when one is given."""
    query_filter = user_filter(options)
    return {**params, "filter": query_filter} if query_filter else params


def scalar_id(value: object) -> str | None:
    """An id as text (``10777`` -> ``"10777"``); ``None`` when absent, empty or not a scalar."""
    if value is None or isinstance(value, (bool, dict, list)) or value == "":
        return None
    return str(value)


def label_value(value: object, field: str) -> float | None:
    """A label: a finite float, ``None`` when null or non-finite; anything else is a ``parse_error``
    (text where a number belongs means the entry is malformed, not that the value is missing)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RejectedInput("parse_error", f"{field} is {value!r}, not a number")
    return float(value) if math.isfinite(value) else None


def required(entry: dict, field: str) -> object:
    """``entry[field]``; a ``missing_field`` rejection when absent or null."""
    value = entry.get(field)
    if value is None:
        raise RejectedInput("missing_field", f"no {field}")
    return value


def check_count(entry: dict, field: str, sites: int) -> None:
    """The entry's own atom count (``natoms``, ``nsites``), when given, must match its site list."""
    declared = entry.get(field)
    if isinstance(declared, int) and not isinstance(declared, bool) and declared != sites:
        raise RejectedInput("composition_mismatch", f"{field} is {declared} but {sites} sites are listed")


def float_rows(value: object, field: str, rows: int | None = None) -> np.ndarray:
    """An (n, 3) float array from nested lists (``rows`` of them when given); ``parse_error`` otherwise."""
    if value == [] and rows in (None, 0):
        return np.zeros((0, 3))
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RejectedInput("parse_error", f"{field} is not a list of numbers: {exc}") from None
    if array.ndim != 2 or array.shape[1] != 3 or (rows is not None and array.shape[0] != rows):
        expected = f"({rows}, 3)" if rows is not None else "(n, 3)"
        raise RejectedInput("parse_error", f"{field} has shape {array.shape}, not {expected}")
    if not np.isfinite(array).all():  # numpy reads a JSON null as NaN
        raise RejectedInput("non_finite", f"{field} holds null, NaN or infinite values")
    return array


def element(symbol: object, where: str) -> int:
    """The atomic number of ``symbol``; ``unknown_element`` for anything that is not an element."""
    try:
        return atomic_number(symbol)  # type: ignore[arg-type]
    except ValueError:
        raise RejectedInput("unknown_element", f"{where}: unknown element {symbol!r}") from None
