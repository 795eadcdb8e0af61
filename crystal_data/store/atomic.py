"""Atomic writes: write under a temporary name in the same filesystem, flush, then rename."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], None], tmp_root: Path) -> None:
    """Call ``write(tmp)`` for a temporary file or folder, then move it to ``path`` in one rename.
    A leftover at ``path`` (from a killed run) is replaced. A file replaces a file atomically (readers
    see the old or the new one); a folder target has to be removed first."""
    tmp_root.mkdir(parents=True, exist_ok=True)
    tmp = tmp_root / f"{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        write(tmp)
        if tmp.is_file():
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        path.parent.mkdir(parents=True, exist_ok=True)
        if tmp.is_dir() or path.is_dir():
            remove(path)
        os.replace(tmp, path)
    finally:
        remove(tmp)


def atomic_write_json(path: Path, data: object, tmp_root: Path) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), tmp_root)


def remove(path: Path) -> None:
    """Remove a file or a folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
