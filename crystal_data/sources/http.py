"""A small HTTP client for upstream APIs: timeouts, retries with jittered backoff, a rate limit,
and error messages that never carry a secret.

We use httpx directly rather than ``qmpy-rester``: that client blocks on ``input()``, has no timeout
or retry, and turns every error into ``None`` (docs/sources.md explains the choice).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx

from crystal_data.sources.politeness import Politeness, RateLimiter

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "crystal-data (https://github.com/; polite bulk client)"


class FetchError(RuntimeError):
    """A request that failed for good (retries exhausted, or an answer that retrying cannot fix)."""


class RetryableError(Exception):
    """Raised inside a retried call for an answer worth asking again (e.g. a repeated page)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class JsonResponse:
    url: str
    """The final URL, secrets removed."""
    status: int
    body: bytes
    """The body exactly as it came."""
    data: object
    headers: dict[str, str]


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


MAX_RETRY_AFTER_S = 900.0
"""A ``Retry-After`` longer than this is not waited out in full (a broken or hostile server)."""


def backoff_delay(attempt: int, politeness: Politeness, retry_after: float | None = None) -> float:
    """Full-jitter exponential backoff; the server's ``Retry-After`` wins when it is longer."""
    ceiling = min(politeness.backoff_max_s, politeness.backoff_s * 2**attempt)
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
    return delay


def with_retries(
    call: Callable[[], T],
    politeness: Politeness,
    what: str,
    secrets: Iterable[str] = (),
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``, retrying transient failures: :class:`RetryableError`, httpx transport errors
    (dropped connections, timeouts) and responses with a status in :data:`RETRY_STATUS`."""
    secrets = tuple(secrets)
    for attempt in range(politeness.max_retries + 1):
        try:
            return call()
        except (RetryableError, httpx.TransportError, httpx.HTTPStatusError) as exc:
            retry_after = None
            if isinstance(exc, httpx.HTTPStatusError):
                if exc.response.status_code not in RETRY_STATUS:
                    raise FetchError(redact(f"{what}: {_describe(exc)}", secrets)) from None
                retry_after = retry_after_seconds(exc.response.headers.get("retry-after"))
            elif isinstance(exc, RetryableError):
                retry_after = exc.retry_after
            if attempt == politeness.max_retries:
                raise FetchError(
                    redact(f"{what}: gave up after {attempt + 1} attempts: {_describe(exc)}", secrets)
                ) from None
            delay = backoff_delay(attempt, politeness, retry_after)
            log.warning(redact(f"{what}: {_describe(exc)}; retry {attempt + 1} in {delay:.1f} s", secrets))
            sleep(delay)
    raise AssertionError("unreachable")


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        try:
            text = exc.response.text[:200].replace("\n", " ")
        except httpx.ResponseNotRead:  # a streamed response: the status is all we have
            text = ""
        return f"HTTP {exc.response.status_code} {text}".strip()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class HttpClient:
    """Polite JSON GETs against one upstream. Thread-safe; use as a context manager."""

    def __init__(
        self,
        politeness: Politeness,
        headers: dict[str, str] | None = None,
        secrets: Iterable[str] = (),
    ):
        self.politeness = politeness
        self.secrets = tuple(s for s in secrets if s)
        self._limiter = RateLimiter(politeness.requests_per_second)
        self._slots = threading.BoundedSemaphore(politeness.concurrency)
        self._client = httpx.Client(
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            timeout=httpx.Timeout(politeness.timeout_s),
            follow_redirects=True,
            limits=httpx.Limits(max_connections=politeness.concurrency),
        )

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    @property
    def httpx(self) -> httpx.Client:
        """The underlying client (for streaming downloads); go through :meth:`acquire` first."""
        return self._client

    def acquire(self) -> _Slot:
        """A concurrency slot, taken after the rate limiter allows a new request."""
        return _Slot(self._slots, self._limiter)

    def get_json(
        self, url: str, params: dict | None = None, check: Callable[[JsonResponse], None] | None = None
    ) -> JsonResponse:
        """GET ``url`` and parse JSON, with retries. A body that is not complete JSON (truncated by a
        dropped connection) is retried like a 5xx. ``check`` may raise :class:`RetryableError`."""

        def attempt() -> JsonResponse:
            with self.acquire():
                response = self._client.get(url, params=params)
            response.raise_for_status()
            try:
                data = json.loads(response.content)
            except ValueError as exc:
                raise RetryableError(
                    f"response is not complete JSON ({len(response.content)} bytes): {exc}"
                ) from None
            result = JsonResponse(
                redact(str(response.url), self.secrets),
                response.status_code,
                response.content,
                data,
                dict(response.headers),
            )
            if check is not None:
                check(result)
            return result

        return with_retries(attempt, self.politeness, f"GET {redact(url, self.secrets)}", self.secrets)


class _Slot:
    def __init__(self, slots: threading.BoundedSemaphore, limiter: RateLimiter):
        self._slots = slots
        self._limiter = limiter

    def __enter__(self) -> None:
        self._slots.acquire()
        self._limiter.wait()

    def __exit__(self, *exc: object) -> None:
        self._slots.release()
