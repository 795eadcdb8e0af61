"""What every source module provides, so ``fetch`` and ``normalize`` treat them alike.

A source module (``mp``, ``oqmd``, ``oqmd_optimade``, ``jarvis``) exposes one or more
:class:`Source` objects. ``fetch`` fills a :class:`~crystal_data.sources.landing.RawZone`;
``records`` reads only that zone (never the network) and yields canonical records, or a
:class:`RawRejection` naming the entry and the reason, in the zone's order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from crystal_data.record import CrystalRecord
from crystal_data.sources.landing import RawZone
from crystal_data.sources.paging import FetchReport
from crystal_data.sources.politeness import Politeness


@dataclass(frozen=True)
class RawRejection:
    """An upstream entry that cannot become a record (or that a policy excludes)."""

    source_id: str
    code: str
    reason: str
    origin: str
    """Where it was: the raw page or file and the position in it."""
    source: str | None = None
    """The record source it would have had (set when staged)."""


@dataclass(frozen=True)
class FetchOptions:
    endpoint: str | None = None
    """Base URL; ``None`` takes the source's environment variable, then the public default."""
    limit: int | None = None
    """Stop after this many records (``None``: everything)."""
    politeness: Politeness | None = None
    """``None`` takes the source's defaults (:data:`crystal_data.sources.politeness.DEFAULTS`)."""
    page_size: int | None = None
    progress: bool = True
    extra: dict = field(default_factory=dict)
    """Source-specific options (MP: ``deprecated``/``theoretical`` policy; OQMD: ``filter``...)."""


@dataclass(frozen=True)
class Source:
    name: str
    """The CLI name and the landing-zone folder, e.g. ``"oqmd"`` or ``"jarvis-dft-3d-2021"``."""
    record_source: str
    """The ``source`` of the records it yields (the uid prefix), e.g. ``"oqmd"`` for both OQMD routes."""
    label_units: dict[str, str]
    endpoint_env: str
    default_endpoint: str
    fetch: Callable[[RawZone, FetchOptions], FetchReport]
    records: Callable[[RawZone], Iterator[CrystalRecord | RawRejection]]
    description: str = ""

    def endpoint(self, options: FetchOptions) -> str:
        """``options.endpoint``, else ``$<endpoint_env>``, else the public default; no trailing slash."""
        import os

        return (options.endpoint or os.environ.get(self.endpoint_env) or self.default_endpoint).rstrip("/")
