"""The raw landing zone: every page or file fetched, stored as it came, with how it was fetched.

Layout of ``RAW/<source>/``::

    fetch.json                      what is being fetched: source, endpoint, query, page size
    pages/p00000000.json.gz         response body, gzip of the exact bytes received
    pages/p00000000.meta.json       request (URL, params), status, time, source version, offset,
                                    record count, sha256 of the body; written after the body, so a
                                    page is complete exactly when its sidecar exists
    files/<name>, files/<name>.meta.json    downloaded files (JARVIS) and their sidecars
    complete.json                   written when the upstream said there is nothing more

Append-only: a fetch never rewrites a complete page. Secrets never reach any of these files.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from crystal_data.store.atomic import atomic_write, atomic_write_json, remove

PAGE_DIGITS = 8


class FetchConflict(RuntimeError):
    """The landing folder holds a fetch of something else."""


class CorruptRawPage(RuntimeError):
    """A stored page does not match its sidecar's checksum."""


@dataclass(frozen=True)
class StoredPage:
    index: int
    body_path: Path
    meta: dict

    @property
    def offset(self) -> int:
        return int(self.meta["offset"])

    @property
    def count(self) -> int:
        return int(self.meta["count"])

    def body(self) -> bytes:
        """The body as it came; its sha256 is checked against the sidecar."""
        body = gzip.decompress(self.body_path.read_bytes())
        if hashlib.sha256(body).hexdigest() != self.meta["sha256"]:
            raise CorruptRawPage(f"{self.body_path}: sha256 does not match {self.body_path.name}'s sidecar")
        return body

    def json(self) -> object:
        return json.loads(self.body())


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RawZone:
    """One source's folder in the landing zone."""

    def __init__(self, root: str | Path, source: str):
        self.root = Path(root)
        self.source = source
        self.dir = self.root / source
        self.tmp = self.dir / ".tmp"

    # ---------------------------------------------------------------- identity
    def claim(self, spec: dict, overwrite: bool = False) -> None:
        """Start or resume a fetch of ``spec``; a folder holding another fetch is a conflict."""
        path = self.dir / "fetch.json"
        spec = json.loads(json.dumps({"source": self.source, **spec}))  # compare as stored (no tuples)
        if path.exists() and not overwrite:
            current = json.loads(path.read_text())
            if current != spec:
                raise FetchConflict(
                    f"{self.dir} holds a fetch of {json.dumps(current, sort_keys=True)}, not "
                    f"{json.dumps(spec, sort_keys=True)}; use another --raw folder"
                )
            return
        if overwrite:
            remove(self.dir)
        atomic_write_json(path, spec, self.tmp)

    def spec(self) -> dict:
        return json.loads((self.dir / "fetch.json").read_text())

    def exists(self) -> bool:
        return (self.dir / "fetch.json").exists()

    # ---------------------------------------------------------------- pages
    def page_paths(self, index: int) -> tuple[Path, Path]:
        stem = self.dir / "pages" / f"p{index:0{PAGE_DIGITS}d}"
        return stem.with_suffix(".json.gz"), stem.with_suffix(".meta.json")

    def write_page(self, index: int, body: bytes, meta: dict) -> StoredPage:
        """Store one page; ``meta`` gets the sha256 and size of ``body`` added."""
        body_path, meta_path = self.page_paths(index)
        meta = {
            "index": index,
            "sha256": hashlib.sha256(body).hexdigest(),
            "bytes": len(body),
            **meta,
        }
        compressed = gzip.compress(body, compresslevel=6, mtime=0)
        atomic_write(body_path, lambda tmp: tmp.write_bytes(compressed), self.tmp)
        atomic_write_json(meta_path, meta, self.tmp)
        return StoredPage(index, body_path, meta)

    def pages(self) -> Iterator[StoredPage]:
        """Complete pages in order, stopping at the first gap (a page whose sidecar is missing)."""
        index = 0
        while True:
            body_path, meta_path = self.page_paths(index)
            if not (meta_path.exists() and body_path.exists()):
                return
            yield StoredPage(index, body_path, json.loads(meta_path.read_text()))
            index += 1

    # ---------------------------------------------------------------- files
    def file_path(self, name: str) -> Path:
        if "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"bad file name {name!r}")
        return self.dir / "files" / name

    def file_meta(self, name: str) -> dict | None:
        meta = self.file_path(name).with_name(name + ".meta.json")
        return json.loads(meta.read_text()) if meta.exists() else None

    def write_file_meta(self, name: str, meta: dict) -> None:
        atomic_write_json(self.file_path(name).with_name(name + ".meta.json"), meta, self.tmp)

    # ---------------------------------------------------------------- end
    def mark_complete(self, info: dict) -> None:
        atomic_write_json(self.dir / "complete.json", {"completed_at": utc_now(), **info}, self.tmp)

    def completion(self) -> dict | None:
        path = self.dir / "complete.json"
        return json.loads(path.read_text()) if path.exists() else None


def raw_sources(root: str | Path) -> list[str]:
    """Names of the sources with a fetch in the landing folder ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such landing folder")
    return sorted(p.parent.name for p in root.glob("*/fetch.json"))
