"""Datasets published as JARVIS figshare files (``jarvis``, ``mp2018``): download through the source
client, normalise into a store per featurizer config, record the upstream entries, draw the paper
splits.

Offline, a zip can be placed by hand at the exact path the downloader uses
(``data_home()/raw/<source>/files/<name>.zip``): it is checked like a download (a zip holding the
expected member, CRC and size limits, the pinned sha256 when there is one) and then used.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from crystal_data.datasets.cache import DatasetNotAvailable, announce, is_ready, locked, raw_root, stores_root
from crystal_data.datasets.registry import DatasetInfo
from crystal_data.datasets.split_files import mark_dataset, store_paper_splits, write_entries
from crystal_data.graphs.config import GraphConfig
from crystal_data.normalize import normalize
from crystal_data.schema import make_uid
from crystal_data.sources import get_source
from crystal_data.sources.base import FetchOptions
from crystal_data.sources.download import (
    CorruptDownload,
    MissingDownload,
    check_zip_member,
    sidecar_path,
    verify_cached,
)
from crystal_data.sources.http import FetchError
from crystal_data.sources.jarvis import REGISTRY, FigshareFile
from crystal_data.sources.landing import RawZone, utc_now
from crystal_data.staging import stage_source
from crystal_data.store.manifest import file_sha256

log = logging.getLogger("crystal_data.load")

PLACED = "placed-by-user"


def prepare(
    info: DatasetInfo, home: Path, graph: GraphConfig, *, offline: bool, workers: int, progress: bool
) -> Path:
    """The finished store of ``info`` for ``graph``: cached, or downloaded (unless ``offline``) and
    built now."""
    store = stores_root(home) / info.name / graph.hash
    with locked(f"dataset:{info.name}", home):
        if is_ready(store):
            log.info("%s: using the cached store %s (graph config %s)", info.name, store, graph.hash)
            return store
        zone = RawZone(raw_root(home), info.source)
        _ensure_download(info, zone, offline, progress)
        announce(info.name, store, graph.to_dict())
        normalize(zone.root, store, sources=[info.source], graph=graph, workers=workers, progress=progress)
        uids, labels = _upstream_entries(info, zone)
        write_entries(store, uids, labels)
        store_paper_splits(store, list(info.targets), info.paper_split)
        mark_dataset(store, {"name": info.name, "title": info.title, "source": info.source})
    return store


def placement_hint(info: DatasetInfo, zone: RawZone) -> str:
    """What to place where when the file cannot be downloaded."""
    entry = REGISTRY[info.source]
    url = entry.url(get_source(info.source).endpoint(FetchOptions()))
    return (
        f"download {url} (the figshare file {entry.file_name}, a zip holding {entry.member}) on a machine "
        f"with network and place it at {zone.file_path(entry.file_name)}, then load again"
    )


def _ensure_download(info: DatasetInfo, zone: RawZone, offline: bool, progress: bool) -> None:
    entry = REGISTRY[info.source]
    path = zone.file_path(entry.file_name)
    hint = placement_hint(info, zone)
    if path.is_file() and not sidecar_path(path).is_file():
        _adopt(info, zone, entry, hint)
    elif offline:
        try:
            verify_cached(path, entry.sha256, hint=hint)
        except (MissingDownload, CorruptDownload) as exc:
            raise DatasetNotAvailable(f"{info.name} is not cached and loading is offline: {exc}") from None
    try:
        # With a verified file in place this makes no request; otherwise it downloads (resumable).
        get_source(info.source).fetch(zone, FetchOptions(progress=progress))
    except FetchError as exc:
        raise DatasetNotAvailable(f"{info.name}: the download failed ({exc}); {hint}") from None


def _adopt(info: DatasetInfo, zone: RawZone, entry: FigshareFile, hint: str) -> None:
    """Accept a zip placed by hand: the downloader's content checks, then a sidecar saying so."""
    path = zone.file_path(entry.file_name)
    size = path.stat().st_size
    try:
        if size > entry.max_bytes:
            raise ValueError(f"{size} bytes, over the limit of {entry.max_bytes}")
        check_zip_member(entry.member, entry.max_member_bytes)(path)
    except ValueError as exc:
        raise DatasetNotAvailable(
            f"{path} was placed by hand but is not the expected file: {exc}; {hint}"
        ) from None
    sha256 = file_sha256(path)
    if entry.sha256 is not None and sha256 != entry.sha256:
        raise DatasetNotAvailable(f"{path}: sha256 {sha256} is not the published {entry.sha256}; {hint}")
    zone.write_file_meta(
        entry.file_name,
        {
            "url": None,
            "bytes": size,
            "sha256": sha256,
            "sha256_source": PLACED,
            "sha256_note": "the file was placed by hand; this sha256 was computed when it was first used",
            "placed_at": utc_now(),
            "dataset": entry.dataset,
            "member": entry.member,
            "source_version": entry.source_version,
        },
    )
    log.info("%s: using the file placed at %s (sha256 %s)", info.name, path, sha256)


def _upstream_entries(info: DatasetInfo, zone: RawZone) -> tuple[list[str | None], dict[str, list]]:
    """Every entry of the file in order: its uid (``None`` when the parser rejected it) and its
    targets, read back from the staged parts ``normalize`` wrote (columns of
    :func:`crystal_data.staging.staged_table`)."""
    source = get_source(info.source)
    staged = stage_source(source, zone, progress=False)  # reuses the staging normalize just did
    uids: list[str | None] = []
    labels: dict[str, list] = {name: [] for name in info.targets}
    for part in dict.fromkeys(item.part for item in staged.inputs):
        with pa.memory_map(part) as handle:
            table = pa.ipc.open_file(handle).read_all()
        codes = table.column("reject_code").to_pylist()
        ids = table.column("source_id").to_pylist()
        uids.extend(None if code else make_uid(source.record_source, sid) for code, sid in zip(codes, ids))
        for name in info.targets:
            labels[name].extend(table.column(f"label:{name}").to_pylist())
    return uids, labels
