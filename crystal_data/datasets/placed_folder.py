"""Datasets with no public download, given as a CGCNN-layout folder placed by hand (``oqmd-exp``):
``data_home()/raw/<name>/id_prop.csv`` (no header, ``id,value``) and ``<id>.cif`` per id.

The folder is scanned on every load (cheap: a listing and one CSV); when what it lists changed since
the cached store was built, the store is rebuilt and the log says so.
"""

from __future__ import annotations

import logging
from pathlib import Path

from crystal_data.build import BuildConflict, BuildSettings, build_store
from crystal_data.datasets.cache import DatasetNotAvailable, announce, is_ready, locked, raw_root, stores_root
from crystal_data.datasets.registry import DatasetInfo
from crystal_data.datasets.split_files import mark_dataset, store_paper_splits, write_entries
from crystal_data.graphs.config import GraphConfig
from crystal_data.readers.cif_folder import scan_cif_folder
from crystal_data.schema import make_uid

log = logging.getLogger("crystal_data.load")


def placement_hint(info: DatasetInfo, folder: Path) -> str:
    """What to place where."""
    (target,) = info.targets
    return (
        f"{info.name} has no download: place a CGCNN-layout folder at {folder}: id_prop.csv without a "
        f"header, one line 'ID,VALUE' per crystal ({target}, {info.targets[target]}), and ID.cif for every "
        "ID (docs/datasets.md names a public source)"
    )


def prepare(
    info: DatasetInfo, home: Path, graph: GraphConfig, *, offline: bool, workers: int, progress: bool
) -> Path:
    """The finished store of the placed folder for ``graph``, built now when missing or stale.
    ``offline`` changes nothing: nothing is downloaded."""
    folder = raw_root(home) / info.name
    store = stores_root(home) / info.name / graph.hash
    with locked(f"dataset:{info.name}", home):
        if not (folder / "id_prop.csv").is_file():
            if is_ready(store):
                log.info("%s: %s is gone; using the cached store %s", info.name, folder, store)
                return store
            raise DatasetNotAvailable(placement_hint(info, folder))
        scanned = scan_cif_folder(folder, "cgcnn", list(info.targets))
        settings = BuildSettings(
            source=info.name, source_version="placed", label_units=info.targets, graph=graph
        )
        build_info = {"input_folder": str(scanned.folder), "layout": scanned.layout}
        ready = is_ready(store)
        try:
            if not ready:
                announce(info.name, store, graph.to_dict())
            build_store(
                scanned.inputs, store, settings, workers=workers, progress=progress, build_info=build_info
            )
        except BuildConflict:
            log.warning("%s: %s changed since %s was built; rebuilding it", info.name, folder, store)
            ready = False
            build_store(
                scanned.inputs, store, settings, workers=workers, progress=progress, build_info=build_info,
                overwrite=True,
            )  # fmt: skip
        if ready:
            log.info("%s: using the cached store %s (graph config %s)", info.name, store, graph.hash)
            return store
        write_entries(
            store,
            [make_uid(info.name, item.source_id) for item in scanned.inputs],
            {name: [item.labels.get(name) for item in scanned.inputs] for name in info.targets},
        )
        store_paper_splits(store, list(info.targets), info.paper_split)
        mark_dataset(store, {"name": info.name, "title": info.title, "folder": str(scanned.folder)})
    return store
