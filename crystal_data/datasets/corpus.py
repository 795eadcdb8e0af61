"""The pretraining corpus (``untagged-800k``): a store built elsewhere, found by path."""

from __future__ import annotations

import os
from pathlib import Path

from crystal_data.datasets.cache import DatasetNotAvailable, stores_root
from crystal_data.datasets.registry import UNTAGGED_800K_ENV, DatasetInfo
from crystal_data.store import layout


def locate(info: DatasetInfo, home: Path) -> Path:
    """``$CRYSTAL_DATA_UNTAGGED_800K``, else ``data_home()/stores/untagged-800k``: a finished store
    (or an unpacked release folder). ``DatasetNotAvailable`` says how to build it otherwise."""
    configured = os.environ.get(UNTAGGED_800K_ENV, "").strip()
    if "://" in configured:
        raise DatasetNotAvailable(
            f"${UNTAGGED_800K_ENV}={configured}: reading a release by URL is not supported yet; download "
            f"the release folder and set ${UNTAGGED_800K_ENV} to its path"
        )
    path = Path(configured).expanduser() if configured else stores_root(home) / info.name
    if not (path / layout.MANIFEST).is_file():
        raise DatasetNotAvailable(
            f"{info.name} is not built at {path}: build it with `crystal-data build --from-cif "
            f"crystal_untagged_800K/ --layout untagged-800k --out {path}` (or the build-800k flow), or set "
            f"${UNTAGGED_800K_ENV} to the folder of a finished store"
        )
    return path
