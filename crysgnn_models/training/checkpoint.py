"""Checkpoints: plain dicts of tensors and numbers, written atomically, read with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from crystal_data.store.atomic import atomic_write
from crystal_data.store.manifest import file_sha256

FORMAT = "crysgnn_models.checkpoint/1"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus the format tag) to ``path`` via a temporary file and a rename, so a
    crash never leaves a truncated checkpoint behind."""
    path = Path(path)
    atomic_write(path, lambda tmp: torch.save({"format": FORMAT, **payload}, tmp), path.parent)
    return path


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (never unpickles code: ``weights_only``).

    ``kind`` checks the checkpoint's ``kind`` field (``"crysgnn"``, ``"student"`` ...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a foreign or corrupt file
        raise ValueError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a crysgnn_models checkpoint (no format tag {FORMAT!r})")
    if kind is not None and payload.get("kind") != kind:
        raise ValueError(f"{path}: a {payload.get('kind')!r} checkpoint, expected {kind!r}")
    return payload


def store_fingerprint(store_path: str | Path) -> str:
    """sha256 of a store's ``manifest.json``: names the exact data a model saw."""
    return file_sha256(Path(store_path) / "manifest.json")
