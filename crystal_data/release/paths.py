"""Names inside a release: relative, POSIX, and never outside the release folder.

A release manifest may come from a server we do not trust; every file name in it is checked here
before it becomes a path on this machine.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from crystal_data.store import layout

_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_version(version: str) -> str:
    """``version`` when it can name a release folder (letters, digits, ``. _ + -``, not starting with a
    dot); ``ValueError`` otherwise."""
    if not _VERSION.fullmatch(version or ""):
        raise ValueError(
            f"release version {version!r}: use letters, digits and . _ + - only, starting with a letter or "
            "digit (e.g. 2026.11.0)"
        )
    return version


def check_relative(rel: str) -> str:
    """``rel`` when it names a file inside a release: relative, ``/``-separated, no ``.``/``..``/empty
    segments, no backslash or NUL, not hidden at the top level (work areas) and not the manifest;
    ``ValueError`` otherwise."""
    parts = rel.split("/") if isinstance(rel, str) else []
    unsafe = (
        not parts
        or any(part in ("", ".", "..") for part in parts)
        or "\\" in rel
        or "\x00" in rel
        or PurePosixPath(rel).is_absolute()
        or parts[0].startswith(".")
        or rel == layout.MANIFEST
    )
    if unsafe:
        raise ValueError(f"unsafe file name {rel!r} in a release manifest: refused")
    return rel


def check_entry(rel: str, entry: object) -> tuple[str, int, str]:
    """(name, bytes, sha256) of one ``files`` entry of a manifest, each checked."""
    check_relative(rel)
    if not isinstance(entry, dict):
        raise ValueError(f"{rel}: manifest entry is not an object")
    size, sha256 = entry.get("bytes"), entry.get("sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"{rel}: manifest size {size!r} is not a byte count")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError(f"{rel}: manifest sha256 {sha256!r} is not 64 lower-case hex digits")
    return rel, size, sha256
