"""Download one file from a server we do not trust, and keep it only when it is whole and right.

``download_file`` streams to ``<dest>.part``, resumes a dropped transfer with ``Range: bytes=N-``
(checked against ``Content-Range``; a ``200`` answer means the server ignored the range, so it starts
again from zero), retries 429/5xx, dropped connections and timeouts with backoff, enforces a size
limit on the announced and on the received bytes, checks the content (``check``: e.g. "is a zip
with this member and a good CRC", which catches an HTML error page saved as the file), checks the
sha256, fsyncs, and renames into place. The sidecar ``<dest>.meta.json`` is written last, so a file
is complete exactly when its sidecar exists.

Without a published checksum the first good download's sha256 is recorded and trusted from then on
(trust on first download; the sidecar says so). Every later use re-hashes the file against the
sidecar (:func:`verify_cached`): a corrupted cache is downloaded again by ``download_file`` and never
read.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crystal_data.progress import progress_bar
from crystal_data.sources.http import (
    RETRY_STATUS,
    FetchError,
    HttpClient,
    RetryableError,
    retry_after_seconds,
    with_retries,
)
from crystal_data.sources.landing import utc_now
from crystal_data.store.atomic import atomic_write_json, remove
from crystal_data.store.manifest import file_sha256

log = logging.getLogger(__name__)

PINNED = "pinned"
TRUST_ON_FIRST_DOWNLOAD = "trust-on-first-download"
_TOFU_NOTE = (
    "no published checksum: this sha256 was computed from the first complete download that passed the "
    "content check, and every later use of the file is verified against it"
)
_CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(FetchError):
    """A download that cannot be accepted: too large, wrong content, wrong checksum, an HTTP error."""


class MissingDownload(FileNotFoundError):
    """No complete download at the path (no file, or no sidecar vouching for it)."""


class CorruptDownload(RuntimeError):
    """A cached download that no longer matches its sidecar's checksum (or the pinned one)."""


@dataclass(frozen=True)
class DownloadResult:
    """A verified file at ``path`` and how it got there."""

    path: Path
    sha256: str
    bytes: int
    resumed_from: int
    """Bytes of an earlier partial download that the final transfer continued from (0: from scratch)."""
    requests: int
    """GET requests made (a followed redirect counts once); 0 when a verified cached file was used."""
    sha256_source: str
    """``"pinned"`` (checked against ``expected_sha256``) or ``"trust-on-first-download"``."""
    cached: bool


def sidecar_path(dest: Path) -> Path:
    """``<dest>.meta.json``: url, size, sha256 and how the sha256 is vouched for."""
    return dest.with_name(dest.name + ".meta.json")


def verify_cached(dest: Path, expected_sha256: str | None = None, hint: str = "download it again") -> dict:
    """The sidecar of the complete download at ``dest``, after re-hashing the file against it.

    Raises :class:`MissingDownload` when there is no file or no sidecar, :class:`CorruptDownload`
    when the size or sha256 differ from the sidecar, or the sidecar's sha256 from ``expected_sha256``;
    ``hint`` ends both messages (what the user should do)."""
    sidecar = sidecar_path(dest)
    if not dest.is_file() or not sidecar.is_file():
        raise MissingDownload(f"{dest}: not downloaded (no complete file with a sidecar); {hint}")
    try:
        meta = json.loads(sidecar.read_text())
        size, sha256 = int(meta["bytes"]), str(meta["sha256"])
    except (ValueError, KeyError, TypeError):
        raise CorruptDownload(f"{sidecar}: unreadable sidecar; {hint}") from None
    actual_size = dest.stat().st_size
    if actual_size != size:
        raise CorruptDownload(
            f"{dest}: {actual_size} bytes, its sidecar says {size}; the file is corrupt, {hint}"
        )
    actual = file_sha256(dest)
    if actual != sha256:
        raise CorruptDownload(
            f"{dest}: sha256 {actual} does not match {sha256} recorded when it was downloaded; "
            f"the file is corrupt, {hint}"
        )
    if expected_sha256 is not None and actual != expected_sha256:
        raise CorruptDownload(f"{dest}: sha256 {actual} is not the pinned {expected_sha256}; {hint}")
    return meta


def download_file(
    http: HttpClient,
    url: str,
    dest: Path,
    *,
    expected_sha256: str | None,
    max_bytes: int,
    tmp_dir: Path,
    progress: bool = False,
    check: Callable[[Path], None] | None = None,
    meta: dict | None = None,
) -> DownloadResult:
    """Make ``dest`` a verified copy of ``url``; a verified cached copy is used without a request.

    ``check(path)`` raises ``ValueError`` for content that is not what was asked for (an HTML page
    instead of a zip): the file is discarded and asked for again, with backoff, ``max_retries`` times.
    A sha256 different from ``expected_sha256`` is a :class:`DownloadError` (after one fresh retry
    when the bytes were stitched from a resumed transfer). ``meta`` is added to the sidecar.
    ``tmp_dir`` holds the temporary files of atomic writes (same filesystem as ``dest``).
    Raises :class:`~crystal_data.sources.http.FetchError` when retries run out."""
    cached = _cached(dest, expected_sha256)
    if cached is not None:
        return cached
    dest.parent.mkdir(parents=True, exist_ok=True)
    transfer = _Transfer(http, url, dest, max_bytes, tmp_dir, progress)

    def attempt() -> str:
        transfer.run()
        problem = _content_problem(transfer.part, check)
        if problem is not None:
            transfer.discard()
            raise RetryableError(f"{url}: {problem}")
        sha256 = file_sha256(transfer.part)
        if expected_sha256 is not None and sha256 != expected_sha256:
            stitched = transfer.resumed_from > 0
            transfer.discard()
            message = f"{url}: sha256 {sha256} is not the pinned {expected_sha256}"
            if stitched:  # the resumed part may come from another version of the file: once more, whole
                raise RetryableError(message + " (resumed transfer); downloading again from the start")
            raise DownloadError(message)
        return sha256

    sha256 = with_retries(attempt, http.politeness, f"download {url}", http.secrets)
    size = transfer.part.stat().st_size
    os.replace(transfer.part, dest)
    _fsync_dir(dest.parent)
    source = TRUST_ON_FIRST_DOWNLOAD if expected_sha256 is None else PINNED
    sidecar = {
        "url": url,
        "bytes": size,
        "sha256": sha256,
        "sha256_source": source,
        "fetched_at": utc_now(),
        "resumed_from": transfer.resumed_from,
        "requests": transfer.requests,
        **transfer.validators(),
        **({"sha256_note": _TOFU_NOTE} if source == TRUST_ON_FIRST_DOWNLOAD else {}),
        **(meta or {}),
    }
    atomic_write_json(sidecar_path(dest), sidecar, tmp_dir)
    transfer.forget_state()
    return DownloadResult(dest, sha256, size, transfer.resumed_from, transfer.requests, source, False)


def _cached(dest: Path, expected_sha256: str | None) -> DownloadResult | None:
    try:
        meta = verify_cached(dest, expected_sha256)
    except MissingDownload:
        if dest.exists():  # a file no sidecar vouches for (killed between rename and sidecar)
            log.warning("%s has no sidecar; downloading it again", dest)
            remove(dest)
        return None
    except CorruptDownload as exc:
        log.warning("%s; downloading it again", exc)
        remove(dest)
        remove(sidecar_path(dest))
        return None
    return DownloadResult(dest, meta["sha256"], meta["bytes"], 0, 0, meta["sha256_source"], True)


def _content_problem(path: Path, check: Callable[[Path], None] | None) -> str | None:
    if check is None:
        return None
    try:
        check(path)
    except ValueError as exc:
        return str(exc)
    return None


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Transfer:
    """The byte transfer into ``<dest>.part``; each :meth:`run` continues where the part ends.

    ``<dest>.part.json`` keeps the server's validators (ETag, Last-Modified) for the part, so a
    resume after a restart sends ``If-Range`` and a changed file comes back whole (``200``)."""

    def __init__(self, http: HttpClient, url: str, dest: Path, max_bytes: int, tmp_dir: Path, progress: bool):
        self.http = http
        self.url = url
        self.part = dest.with_name(dest.name + ".part")
        self.state_path = dest.with_name(dest.name + ".part.json")
        self.max_bytes = max_bytes
        self.tmp_dir = tmp_dir
        self.progress = progress
        self.requests = 0
        self.resumed_from = 0
        self._state = self._load_state()

    def run(self) -> None:
        offset = self.part.stat().st_size if self.part.exists() else 0
        headers = {"Accept-Encoding": "identity"}  # byte ranges count stored bytes, not decoded ones
        if offset:
            headers["Range"] = f"bytes={offset}-"
            validator = self._state.get("etag") or self._state.get("last_modified")
            if validator:
                headers["If-Range"] = validator
        self.requests += 1
        with self.http.acquire(), self.http.httpx.stream("GET", self.url, headers=headers) as response:
            if response.status_code == 416 and offset and _range_total(response) == offset:
                self.resumed_from = offset  # the part was already whole: killed before it was verified
                return
            total = self._accept(response, offset)
            if response.status_code == 200:
                offset = 0
                self._save_state(response, total)
            self.resumed_from = offset
            self._receive(response, offset, total)

    def _accept(self, response, offset: int) -> int | None:
        """The full size of the file (when known), or an exception for an answer we cannot use."""
        status = response.status_code
        if status in RETRY_STATUS:
            raise RetryableError(f"HTTP {status}", retry_after_seconds(response.headers.get("retry-after")))
        encoding = response.headers.get("content-encoding", "identity").lower()
        if encoding != "identity":
            raise DownloadError(f"{self.url}: Content-Encoding {encoding} although identity was asked for")
        if status == 416 and offset:
            self.discard()
            raise RetryableError(f"cannot resume at byte {offset} (HTTP 416); starting again")
        if status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
            if not offset or match is None or int(match.group(1)) != offset:
                self.discard()
                raise RetryableError(
                    f"Content-Range {response.headers.get('content-range')!r} does not continue at byte "
                    f"{offset}; starting again"
                )
            total = None if match.group(3) == "*" else int(match.group(3))
        elif status == 200:
            length = response.headers.get("content-length")
            total = int(length) if length is not None and length.isdigit() else None
        else:
            raise DownloadError(f"{self.url}: HTTP {status}")
        if total is not None and total > self.max_bytes:
            self.discard()
            raise DownloadError(
                f"{self.url}: {total} bytes announced, more than the limit of {self.max_bytes}"
            )
        return total

    def _receive(self, response, offset: int, total: int | None) -> None:
        size = offset
        remaining = None if total is None else total - offset
        with (
            open(self.part, "ab" if offset else "wb") as out,
            progress_bar(self.progress, remaining, f"download {self.part.name[:-5]}") as advance,
        ):
            try:
                for chunk in response.iter_raw(_CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        break
                    out.write(chunk)
                    advance(len(chunk))
            finally:  # what arrived before a dropped connection is kept for the next resume
                out.flush()
                os.fsync(out.fileno())
        if size > self.max_bytes:
            self.discard()
            raise DownloadError(f"{self.url}: the server sent more than the limit of {self.max_bytes} bytes")
        if total is not None and size != total:
            raise RetryableError(f"the transfer ended at byte {size} of {total}")

    def discard(self) -> None:
        remove(self.part)
        self.forget_state()

    def forget_state(self) -> None:
        remove(self.state_path)
        self._state = {}

    def validators(self) -> dict:
        return {k: self._state[k] for k in ("etag", "last_modified") if self._state.get(k)}

    def _save_state(self, response, total: int | None) -> None:
        etag = response.headers.get("etag")
        self._state = {
            "url": self.url,
            "total": total,
            # A weak ETag cannot validate a byte range (RFC 9110 §13.1.5).
            "etag": etag if etag and not etag.startswith("W/") else None,
            "last_modified": response.headers.get("last-modified"),
        }
        atomic_write_json(self.state_path, self._state, self.tmp_dir)

    def _load_state(self) -> dict:
        if not (self.state_path.is_file() and self.part.is_file()):
            return {}
        try:
            return json.loads(self.state_path.read_text())
        except ValueError:
            return {}


def _range_total(response) -> int | None:
    """The size a 416 answer's ``Content-Range: bytes */N`` gives."""
    match = re.fullmatch(r"bytes \*/(\d+)", response.headers.get("content-range", "").strip())
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------------------------------------- zip
def zip_member_info(archive: zipfile.ZipFile, member: str, max_bytes: int) -> zipfile.ZipInfo:
    """The entry ``member`` (exact name), refused when missing, encrypted or larger than ``max_bytes``
    once decompressed. Names are only compared, never used as paths."""
    try:
        info = archive.getinfo(member)
    except KeyError:
        names = ", ".join(repr(n) for n in archive.namelist()[:5])
        raise ValueError(f"the zip archive has no member {member!r} (it has {names})") from None
    if info.flag_bits & 0x1:
        raise ValueError(f"zip member {member!r} is encrypted")
    if info.file_size > max_bytes:
        raise ValueError(f"zip member {member!r} is {info.file_size} bytes decompressed, over {max_bytes}")
    return info


def check_zip_member(member: str, max_bytes: int) -> Callable[[Path], None]:
    """A ``check`` for :func:`download_file`: a zip archive whose ``member`` decompresses within
    ``max_bytes`` with a correct CRC (read in chunks, never held in memory)."""

    def check(path: Path) -> None:
        if not zipfile.is_zipfile(path):
            raise ValueError(_not_a_zip(path))
        try:
            with (
                zipfile.ZipFile(path) as archive,
                archive.open(zip_member_info(archive, member, max_bytes)) as f,
            ):
                while f.read(1 << 20):  # zipfile checks the CRC when the member's end is read
                    pass
        except (zipfile.BadZipFile, NotImplementedError, EOFError) as exc:
            raise ValueError(f"bad zip archive: {exc}") from None

    return check


def read_zip_member(path: Path, member: str, max_bytes: int) -> bytes:
    """The bytes of ``member`` (CRC checked), refused like :func:`zip_member_info` refuses."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(zip_member_info(archive, member, max_bytes))
    except (zipfile.BadZipFile, NotImplementedError, EOFError) as exc:
        raise ValueError(f"{path}: bad zip archive: {exc}") from None


def _not_a_zip(path: Path) -> str:
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(512).lstrip()
    if head.startswith(b"<"):
        return f"an HTML/XML page ({size} bytes), not a zip archive: the server sent an error page"
    if head.startswith((b"{", b"[")):
        return f"a JSON document ({size} bytes), not a zip archive"
    return f"not a zip archive ({size} bytes, starting {head[:16]!r})"
