"""The pretraining corpus (``untagged-800k``): a store built elsewhere, found by path."""

from __future__ import annotations

import os
from pathlib import Path

from crystal_data.datasets.cache import DatasetNotAvailable, stores_root
from crystal_data.datasets.registry import UNTAGGED_800K_ENV, DatasetInfo
from crystal_data.store import layout


def locate(info: DatasetInfo, home: Path, offline: bool | None = None) -> Path:
    """``$CRYSTAL_DATA_UNTAGGED_800K``, else ``data_home()/stores/untagged-800k``: a finished store, a
    release folder, or a release URL (``https://.../<version>/``, downloaded once into
    ``data_home()/releases``). ``DatasetNotAvailable`` says how to build it otherwise."""
    configured = os.environ.get(UNTAGGED_800K_ENV, "").strip()
    if "://" in configured:
        from crystal_data.release.remote import local_path

        return local_path(configured, offline=offline)
    path = Path(configured).expanduser() if configured else stores_root(home) / info.name
    if not (path / layout.MANIFEST).is_file():
        raise DatasetNotAvailable(
            f"{info.name} is not built at {path}: build it with `crystal-data build --from-cif "
            f"crystal_untagged_800K/ --layout untagged-800k --out {path}` (or the build-800k flow), or set "
            f"${UNTAGGED_800K_ENV} to the folder or URL of a finished store or release"
        )
    return path
