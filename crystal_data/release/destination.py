"""Folders that hold releases: a local folder (or ``file://`` URL), or any fsspec filesystem.

A release is written under a hidden staging name and published in one step at the end. Locally that
step is a single ``rename`` of the folder, which cannot replace a non-empty folder. Object stores have
no folder rename: the files are moved one by one with ``manifest.json`` last, so a reader that takes
"``manifest.json`` present" to mean "release complete" (as :mod:`crystal_data.store` does) never
sees half a release.
"""

from __future__ import annotations

import errno
import os
import shutil
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from crystal_data.store import layout


class ReleaseError(RuntimeError):
    """A release that cannot be written, read or trusted; the message says why."""


class ReleaseExists(ReleaseError, FileExistsError):
    """The release folder already exists: releases are never overwritten."""


def is_http_url(location: str | os.PathLike) -> bool:
    return isinstance(location, str) and location.lower().startswith(("http://", "https://"))


def file_url_path(url: str) -> Path:
    """The local path of a ``file://`` URL (host empty or ``localhost``)."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"{url}: a file:// URL on another host ({parts.netloc}) is not a local path")
    return Path(unquote(parts.path))


class Folder(ABC):
    """Files under one root, addressed by ``/``-separated relative names."""

    @abstractmethod
    def location(self, rel: str = "") -> str:
        """The path or URL of ``rel``, for messages and reports."""

    @abstractmethod
    def child(self, name: str) -> Folder:
        """The folder ``name`` under this one."""

    @abstractmethod
    def exists(self, rel: str) -> bool:
        """Whether a file or folder ``rel`` exists."""

    @abstractmethod
    def subfolders(self) -> list[str]:
        """Names of the folders directly under the root (none when the root does not exist)."""

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """The whole file ``rel``."""

    @abstractmethod
    def open_write(self, rel: str) -> AbstractContextManager[BinaryIO]:
        """A new file opened for binary writing (parent folders created)."""

    @abstractmethod
    def remove(self, rel: str) -> None:
        """Remove a folder tree if it exists."""

    @abstractmethod
    def publish(self, staging: str, final: str, files: list[str]) -> None:
        """Make the staged folder ``staging`` (holding ``files`` and ``manifest.json``) appear as
        ``final``; :class:`ReleaseExists` if ``final`` exists."""

    def refuse_existing(self, final: str) -> None:
        """:class:`ReleaseExists` when ``final`` exists."""
        if self.exists(final):
            raise ReleaseExists(
                f"{self.location(final)} already exists: a release is never overwritten, even with the "
                "same content; publish under a new version"
            )


class LocalFolder(Folder):
    def __init__(self, root: Path):
        self.root = root

    def location(self, rel: str = "") -> str:
        return str(self.root / rel) if rel else str(self.root)

    def child(self, name: str) -> Folder:
        return LocalFolder(self.root / name)

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def subfolders(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    def read_bytes(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def open_write(self, rel: str) -> AbstractContextManager[BinaryIO]:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return _SyncedFile(path)

    def remove(self, rel: str) -> None:
        shutil.rmtree(self.root / rel, ignore_errors=True)

    def publish(self, staging: str, final: str, files: list[str]) -> None:
        self.refuse_existing(final)
        # rename(2) never replaces a non-empty folder, so a release published meanwhile is safe too.
        try:
            os.rename(self.root / staging, self.root / final)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                self.refuse_existing(final)
            raise ReleaseError(f"{self.location(final)}: cannot publish ({exc})") from None
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _SyncedFile(AbstractContextManager):
    """A binary file flushed to disk on close, so the final rename publishes durable bytes."""

    def __init__(self, path: Path):
        self._handle = open(path, "wb")  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> BinaryIO:
        return self._handle

    def __exit__(self, *exc: object) -> None:
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        finally:
            self._handle.close()


class FsspecFolder(Folder):
    def __init__(self, fs, root: str):
        self.fs = fs
        self.root = root.rstrip("/")

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def location(self, rel: str = "") -> str:
        return self.fs.unstrip_protocol(self._path(rel))

    def child(self, name: str) -> Folder:
        return FsspecFolder(self.fs, self._path(name))

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self._path(rel))

    def subfolders(self) -> list[str]:
        if not self.fs.exists(self.root):
            return []
        entries = self.fs.ls(self.root, detail=True)
        return sorted(PurePosixPath(e["name"]).name for e in entries if e["type"] == "directory")

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self._path(rel))

    def open_write(self, rel: str) -> AbstractContextManager[BinaryIO]:
        path = self._path(rel)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        return self.fs.open(path, "wb")

    def remove(self, rel: str) -> None:
        if self.fs.exists(self._path(rel)):
            self.fs.rm(self._path(rel), recursive=True)

    def publish(self, staging: str, final: str, files: list[str]) -> None:
        self.refuse_existing(final)
        for rel in [*files, layout.MANIFEST]:  # the manifest last: its presence means complete
            target = self._path(f"{final}/{rel}")
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self.fs.mv(self._path(f"{staging}/{rel}"), target)
        self.remove(staging)


def open_folder(location: str | os.PathLike) -> Folder:
    """The folder at a local path, a ``file://`` URL, or any other fsspec URL (``s3://``, ``memory://``).
    http(s) is read-only and cannot hold a new release."""
    if not isinstance(location, str):
        return LocalFolder(Path(location).expanduser())
    if "://" not in location:
        return LocalFolder(Path(location).expanduser())
    if location.lower().startswith("file://"):
        return LocalFolder(file_url_path(location))
    if is_http_url(location):
        raise ReleaseError(f"{location}: cannot write a release over http(s); give a folder or an fsspec URL")
    try:
        import fsspec
    except ImportError:
        raise ReleaseError(f"{location}: writing to a URL needs fsspec (pip install fsspec)") from None
    fs, root = fsspec.core.url_to_fs(location)
    return FsspecFolder(fs, root)
