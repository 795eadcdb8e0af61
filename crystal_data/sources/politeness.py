"""How hard a client may push an upstream: rate, concurrency, timeouts and retries."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Politeness:
    """Per-source limits. ``requests_per_second`` caps request starts across all threads;
    ``concurrency`` caps requests in flight; failed requests (429, 5xx, dropped connections,
    timeouts, truncated bodies) are retried ``max_retries`` times with jittered exponential backoff
    up to ``backoff_max_s`` (a 429's ``Retry-After`` wins when it is longer, up to 15 minutes)."""

    requests_per_second: float = 2.0
    concurrency: int = 2
    timeout_s: float = 60.0
    max_retries: int = 8
    backoff_s: float = 1.0
    backoff_max_s: float = 120.0

    def __post_init__(self) -> None:
        if self.requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.timeout_s <= 0 or self.max_retries < 0 or self.backoff_s < 0:
            raise ValueError("timeout_s must be positive; max_retries and backoff_s not negative")

    def with_(self, **changes: float | int | None) -> Politeness:
        """A copy with the given fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULTS: dict[str, Politeness] = {
    # MP gives no public number; it answers 429 and blocks IPs that push (sources.md §2.1).
    "mp": Politeness(requests_per_second=2.0, concurrency=2),
    # OQMD throttles and resets connections after a few fast pages: slow, one at a time, patient.
    "oqmd": Politeness(requests_per_second=1.0, concurrency=1, timeout_s=120.0, max_retries=10),
    "oqmd-optimade": Politeness(requests_per_second=1.0, concurrency=1, timeout_s=120.0, max_retries=10),
    # figshare serves whole files; one download at a time.
    "jarvis": Politeness(requests_per_second=1.0, concurrency=1, timeout_s=300.0),
}


def defaults_for(source: str) -> Politeness:
    """The default politeness of ``source`` (``jarvis-*`` share ``jarvis``'s)."""
    return DEFAULTS.get(source) or DEFAULTS.get(source.split("-")[0]) or Politeness()


class RateLimiter:
    """Spaces request starts at least ``1 / rate`` seconds apart, across threads."""

    def __init__(self, requests_per_second: float):
        self._interval = 1.0 / requests_per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            time.sleep(start - now)
