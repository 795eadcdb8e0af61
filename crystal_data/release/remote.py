"""Open a release by URL: download it once into the cache, checked file by file, then read it locally.

::

    data_home()/releases/<host>/<path>/         the release, exactly as published (a store)
    data_home()/releases/<host>/<parent>/.<version>.download/   while downloading (removed when done):
        manifest.json (+ sidecar), files/<n> (flat names + sidecars), release/ (files moved into place)

The manifest comes first. Every file name in it is checked (relative, inside the release, see
:mod:`crystal_data.release.paths`) before anything else is asked for, and the total size is capped.
Each file then goes through :func:`crystal_data.sources.download.download_file` with the manifest's
sha256 pinned and its size as the limit, so a server can neither send more bytes than announced nor
other bytes than published. A killed download resumes (the sidecars vouch for the files already
complete). Each finished file moves to its name in the staged release; when all are there the
store's counts and alignment are checked and the staged release is renamed to the cache folder in one
step: a cache folder that exists is complete, and is opened without touching the network.
"""

from __future__ import annotations

import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from crystal_data.home import data_home
from crystal_data.release.destination import ReleaseError, file_url_path, is_http_url
from crystal_data.release.paths import check_entry
from crystal_data.sources.politeness import Politeness
from crystal_data.store import layout
from crystal_data.store.manifest import STORE_FORMAT
from crystal_data.store.reader import Store, open_store

log = logging.getLogger(__name__)

MAX_RELEASE_BYTES = 1 << 40
"""Default cap on a release's total size (1 TiB): a manifest announcing more is refused."""
MAX_MANIFEST_BYTES = 256 << 20
RELEASE_POLITENESS = Politeness(requests_per_second=50.0, concurrency=8, timeout_s=300.0)
"""A release is static files (a web server or bucket): more requests at once than an upstream API."""
_DOWNLOAD = ".download"


def release_cache_dir(url: str, home: Path | None = None) -> Path:
    """``data_home()/releases/<host>/<path>`` for an http(s) release URL (credentials and query
    dropped; ``..`` or ``.`` segments refused)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url}: not an http(s) URL")
    host = parts.hostname.lower() + (f"_{parts.port}" if parts.port else "")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if any(s in (".", "..") or "/" in s or "\\" in s or "\x00" in s for s in segments):
        raise ValueError(f"{url}: the path has '.' or '..' segments or escaped separators; refused")
    return (home or data_home()) / "releases" / re.sub(r"[^A-Za-z0-9._-]", "_", host) / Path(*segments)


def fetch_release(
    url: str,
    *,
    offline: bool | None = None,
    max_bytes: int = MAX_RELEASE_BYTES,
    politeness: Politeness = RELEASE_POLITENESS,
    progress: bool = False,
    home: Path | None = None,
) -> Path:
    """The local copy of the release at ``url`` (``http(s)://HOST/PATH/<version>/``), downloaded and
    checked on first use, read from the cache afterwards (also offline). ``offline`` (default
    ``$CRYSTAL_DATA_OFFLINE``) never touches the network."""
    from crystal_data.datasets.cache import DatasetNotAvailable, locked, offline_default

    cache = release_cache_dir(url, home)
    if (cache / layout.MANIFEST).is_file():
        return _checked_cache(cache)
    if offline_default() if offline is None else offline:
        raise DatasetNotAvailable(
            f"the release {url} is not cached at {cache} and loading is offline: open it once with network"
        )
    with locked(f"release:{cache}", home):
        if not (cache / layout.MANIFEST).is_file():  # another process may have finished it meanwhile
            _download(url.rstrip("/") + "/", cache, max_bytes, politeness, progress)
    return cache


def local_path(path_or_url: str | os.PathLike, *, offline: bool | None = None) -> Path:
    """The local folder of a store or release given by path, ``file://`` URL or ``http(s)://`` URL
    (downloaded once into ``data_home()/releases``; see :func:`fetch_release`)."""
    text = os.fspath(path_or_url)
    if is_http_url(text):
        return fetch_release(text, offline=offline)
    if text.lower().startswith("file://"):
        return file_url_path(text)
    if "://" in text:
        raise ValueError(f"{text}: releases are read from local paths, file:// and http(s):// URLs")
    return Path(text).expanduser()


def open_release(
    path_or_url: str | os.PathLike,
    graphs: str | None = None,
    cache_shards: int = 2,
    *,
    offline: bool | None = None,
) -> Store:
    """``crystal_data.open``: a store or release by local path, ``file://`` URL or ``http(s)://`` URL
    (:func:`local_path`). ``graphs`` and ``cache_shards`` as in
    :func:`~crystal_data.store.reader.open_store`; ``offline`` as in :func:`fetch_release`."""
    return open_store(local_path(path_or_url, offline=offline), graphs, cache_shards)


def _checked_cache(cache: Path) -> Path:
    """A complete cached release, after a size check of every file (cheap; ``crystal-data verify``
    re-hashes them)."""
    manifest = json.loads((cache / layout.MANIFEST).read_text())
    for rel, entry in manifest["files"].items():
        path = cache / rel
        if not path.is_file() or path.stat().st_size != entry["bytes"]:
            raise ReleaseError(
                f"{path}: missing or not {entry['bytes']} bytes; the cached release {cache} was modified. "
                "Delete the folder and open the URL again"
            )
    return cache


def _download(base: str, cache: Path, max_bytes: int, politeness: Politeness, progress: bool) -> None:
    from crystal_data.progress import progress_bar
    from crystal_data.sources.download import download_file
    from crystal_data.sources.http import FetchError, HttpClient
    from crystal_data.store.atomic import remove
    from crystal_data.store.manifest import file_sha256
    from crystal_data.store.verify import verify_store

    work = cache.with_name(f".{cache.name}{_DOWNLOAD}")
    staged = work / "release"
    tmp = work / "tmp"
    with HttpClient(politeness) as http:
        try:
            download_file(http, base + layout.MANIFEST, work / layout.MANIFEST, expected_sha256=None,
                          max_bytes=MAX_MANIFEST_BYTES, tmp_dir=tmp)  # fmt: skip
            entries = _entries(json.loads((work / layout.MANIFEST).read_bytes()), base, max_bytes)

            def fetch(item: tuple[int, tuple[str, int, str]]) -> None:
                k, (rel, size, sha256) = item
                if (staged / rel).is_file() and file_sha256(staged / rel) == sha256:
                    return  # moved into place by a run killed before it finished
                flat = work / "files" / f"{k:07d}"  # our own names: no file name of the server is a path yet
                download_file(http, base + quote(rel), flat, expected_sha256=sha256, max_bytes=size,
                              tmp_dir=tmp)  # fmt: skip
                (staged / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(flat, staged / rel)

            with (
                progress_bar(progress, len(entries), "download release") as advance,
                ThreadPoolExecutor(politeness.concurrency) as pool,
            ):
                for _ in pool.map(fetch, enumerate(entries)):
                    advance(1)
        except (FetchError, ValueError) as exc:
            raise ReleaseError(f"{base}: cannot download the release: {exc}") from None
    os.replace(work / layout.MANIFEST, staged / layout.MANIFEST)
    try:
        problems = verify_store(staged, checksums=False)  # each file's sha256 was checked on download
    except (KeyError, TypeError, ValueError, OSError) as exc:
        problems = [f"unreadable ({type(exc).__name__}: {exc})"]
    if problems:
        remove(work)
        raise ReleaseError(f"{base}: the downloaded release does not verify: {'; '.join(problems[:3])}")
    os.rename(staged, cache)  # the complete release appears at once
    remove(work)


def _entries(manifest: object, base: str, max_bytes: int) -> list[tuple[str, int, str]]:
    """The manifest's files as (name, bytes, sha256), every name and number checked, sorted by name."""
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
        raise ValueError(f"{base}{layout.MANIFEST} is not a crystal_data release manifest")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ValueError(f"{base}{layout.MANIFEST} lists no files")
    entries = sorted(check_entry(rel, entry) for rel, entry in files.items())
    total = sum(size for _, size, _ in entries)
    if total > max_bytes:
        raise ValueError(f"the release is {total:,} bytes, over the limit of {max_bytes:,} (max_bytes=)")
    return entries
