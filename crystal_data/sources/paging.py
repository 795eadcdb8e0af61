"""Fetch an offset-paged upstream into the landing zone: in order, resumable, a bounded window of
pages in flight.

The stop rule is the upstream's own: a page the source marks as the last (OQMD: ``links.next`` is
null) or an empty page. A short page that is not the last means the server capped the page size;
the pages requested after it are dropped and fetching goes on from where it really ended, so no
record is skipped. A page whose ids are exactly the previous page's is a repeat (an upstream
fault): it is asked again, and if it keeps repeating the fetch fails loudly.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from crystal_data.progress import progress_bar
from crystal_data.sources.http import FetchError, backoff_delay
from crystal_data.sources.landing import RawZone, utc_now
from crystal_data.sources.politeness import Politeness

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Page:
    """One response, as a source module hands it to the pager."""

    body: bytes
    ids: list[str]
    last: bool
    """The upstream says there is nothing after this page."""
    url: str
    status: int
    source_version: str
    params: dict = field(default_factory=dict)
    total: int | None = None
    """Records the upstream says match the query, when it says."""


FetchPage = Callable[[int, int], Page]
"""``fetch_page(offset, limit)``: one page with retries already applied."""


@dataclass(frozen=True)
class FetchReport:
    source: str
    pages: int
    records: int
    new_pages: int
    complete: bool
    """The upstream's end was reached (``False`` when ``limit`` stopped the fetch)."""
    seconds: float


def ids_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def fetch_pages(
    zone: RawZone,
    fetch_page: FetchPage,
    *,
    page_size: int,
    politeness: Politeness,
    limit: int | None = None,
    progress: bool = True,
) -> FetchReport:
    """Fetch pages after the last complete one in ``zone`` until the end or ``limit`` records."""
    start = time.perf_counter()
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    stored = list(zone.pages())
    records = sum(p.count for p in stored)
    previous = stored[-1].meta if stored else None
    done = zone.completion() is not None or (previous is not None and previous["last"])
    if done:
        if zone.completion() is None:
            zone.mark_complete({"pages": len(stored), "records": records})
        return FetchReport(zone.source, len(stored), records, 0, True, time.perf_counter() - start)

    offset = previous["offset"] + previous["count"] if previous else 0
    index = len(stored)
    new_pages = 0
    complete = False
    repeats = 0
    window: dict[int, Future[Page]] = {}
    total = limit - records if limit is not None else None
    with (
        ThreadPoolExecutor(politeness.concurrency) as pool,
        progress_bar(progress, total, f"fetch {zone.source}") as advance,
    ):

        def want(at: int) -> int:
            return page_size if limit is None else min(page_size, limit - records - (at - offset))

        def fill() -> None:
            at = offset + len(window) * page_size
            while len(window) < politeness.concurrency and want(at) > 0:
                window[at] = pool.submit(fetch_page, at, want(at))
                at += page_size

        while limit is None or records < limit:
            fill()
            requested = want(offset)
            page = window.pop(offset).result()
            digest = ids_digest(page.ids)
            if page.ids and previous is not None and digest == previous.get("ids_sha256"):
                repeats += 1
                if repeats > politeness.max_retries:
                    raise FetchError(
                        f"{zone.source}: the page at offset {offset} keeps repeating the previous page"
                    )
                log.warning("%s: offset %d repeats the previous page; asking again", zone.source, offset)
                _drop(window)
                time.sleep(backoff_delay(repeats - 1, politeness))
                continue
            repeats = 0
            count = len(page.ids)
            last = page.last or count == 0
            meta = {
                "offset": offset,
                "count": count,
                "requested": requested,
                "last": last,
                "request": {"url": page.url, "params": page.params},
                "status": page.status,
                "fetched_at": utc_now(),
                "source_version": page.source_version,
                "total_available": page.total,
                "ids_sha256": digest,
                "first_id": page.ids[0] if page.ids else None,
                "last_id": page.ids[-1] if page.ids else None,
            }
            zone.write_page(index, page.body, meta)
            previous = meta
            index += 1
            new_pages += 1
            records += count
            advance(count)
            if last:
                complete = True
                break
            if count < requested:  # capped by the server: what we asked for next starts too late
                _drop(window)
                page_size = count
            offset += count
        _drop(window)
    if complete:
        zone.mark_complete({"pages": index, "records": records})
    return FetchReport(zone.source, index, records, new_pages, complete, time.perf_counter() - start)


def _drop(window: dict[int, Future[Page]]) -> None:
    for future in window.values():
        future.cancel()
    window.clear()
