"""``crystal_data.load``: a named dataset or any store, one split of one target, cached and offline-first.

>>> train = crystal_data.load("jarvis", split="train", target="formation_energy_peratom")
>>> for batch in train.dataloader(batch_size=64):
...     loss = torch.nn.functional.mse_loss(model(batch), batch.y)
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crystal_data.dataset import DEFAULT_CACHE_BYTES, CrystalDataset
from crystal_data.datasets.cache import offline_default
from crystal_data.datasets.registry import CORPUS, DATASETS, FIGSHARE, DatasetInfo
from crystal_data.datasets.split_files import rows_of, split_table
from crystal_data.graphs.config import AlignnGraphConfig, AnyGraphConfig, GraphConfig
from crystal_data.home import data_home
from crystal_data.splits import ALIGNN_80_10_10, ALL, SplitScheme, canonical_split, parse_scheme
from crystal_data.store import layout

log = logging.getLogger("crystal_data.load")


def load(
    name: str | os.PathLike,
    split: str = ALL,
    target: str | None = None,
    *,
    scheme: str | SplitScheme | None = None,
    seed: int | None = None,
    graph: AnyGraphConfig | None = None,
    offline: bool | None = None,
    workers: int | None = None,
    progress: bool = False,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> CrystalDataset:
    """One split of a dataset, as a map-style :class:`~crystal_data.dataset.CrystalDataset`.

    ``name``: ``jarvis``, ``mp2018``, ``oqmd-exp``, ``untagged-800k`` (docs/datasets.md), the path
    of a store, or the path or URL of a release (``https://.../<version>/``, docs/releases.md).
    ``split``: ``train``, ``val`` (or ``validation``), ``test`` or ``all``. ``target``: a label of the
    dataset (upstream names, e.g. ``formation_energy_peratom``); entries without it are
    left out, and each target has its own split, as in the papers. ``scheme``: ``"alignn"`` (default:
    the paper's split), ``"20-10-70"``, ``"40-10-50"``, ``"60-10-30"``, any ``"A-B-C"`` percentages,
    ``"nA-B-C"`` counts, or a :class:`~crystal_data.splits.SplitScheme`; ``seed`` reseeds it.

    A named dataset is downloaded into ``data_home()/raw`` and built into
    ``data_home()/stores/<name>/<graph hash>`` on first use, then read from there; ``graph`` (default
    CGCNN's 12-NN within 8 Å) picks the featurizer, and a config not built yet is built; an
    :class:`~crystal_data.graphs.config.AlignnGraphConfig` is added to the default store once. ``offline``
    (default ``$CRYSTAL_DATA_OFFLINE``) never touches the network: without a cached copy the error
    says which file to place where. Building uses ``workers`` processes (default: every core).
    """
    split = canonical_split(split)
    known = DATASETS.get(name) if isinstance(name, str) else None
    # Everything that can be checked before a download or a build is checked first.
    chosen = (
        None if split == ALL else parse_scheme(scheme, known.paper_split if known else ALIGNN_80_10_10, seed)
    )
    if known and known.targets:
        _check_target(known.name, list(known.targets), target, split)
    info, store, graphs = _resolve(name, graph, offline, workers, progress)
    manifest = json.loads((store / layout.MANIFEST).read_text())
    label = info.name if info else str(store)
    if not (info and info.targets):
        _check_target(label, list(manifest["labels"]), target, split)
    missing: list[str] = []
    if chosen is None:
        rows = _labelled_rows(store, manifest, target)
    else:
        table = split_table(store, target, chosen)
        rows, missing = rows_of(store, table.filter(pc.equal(table.column("split"), split)))
        if missing:
            log.warning(
                "%s %s %s: %d of %d entries of the split are not records of the store (rejected by the "
                "build, or a repeated upstream id; see store.rejected), e.g. %s",
                label, target, split, len(missing), len(missing) + len(rows), missing[0],
            )  # fmt: skip
    return CrystalDataset(
        store,
        rows,
        name=label,
        split=split,
        target=target,
        scheme=chosen,
        graphs=graphs,
        missing=missing,
        cache_bytes=cache_bytes,
    )


def _check_target(label: str, targets: list[str], target: str | None, split: str) -> None:
    if target is not None and target not in targets:
        raise ValueError(f"{label} has no target {target!r}; its targets: {', '.join(targets) or 'none'}")
    if target is None and split != ALL and targets:
        raise ValueError(
            f"split {split!r} of {label} needs a target: entries without the target are left out before "
            f"drawing, so each target has its own split. Targets: {', '.join(targets)}"
        )


def _resolve(
    name: str | os.PathLike,
    graph: AnyGraphConfig | None,
    offline: bool | None,
    workers: int | None,
    progress: bool,
) -> tuple[DatasetInfo | None, Path, str | None]:
    """(registry entry or ``None``, store folder, graph hash to read or ``None`` for the default)."""
    if isinstance(name, str) and name in DATASETS:
        from crystal_data.datasets import corpus, figshare, placed_folder  # the build stack, on demand
        from crystal_data.datasets.cache import locked
        from crystal_data.store.add_graphs import add_graphs

        info = DATASETS[name]
        home = data_home()
        if info.kind == CORPUS:
            store = corpus.locate(info, home, offline=offline)
            return info, store, _graphs_of(store, graph)
        prepare = figshare.prepare if info.kind == FIGSHARE else placed_folder.prepare
        workers = workers or os.cpu_count() or 1
        store = prepare(
            info,
            home,
            graph if isinstance(graph, GraphConfig) else GraphConfig(),
            offline=offline_default() if offline is None else offline,
            workers=workers,
            progress=progress,
        )
        if graph is None or isinstance(graph, GraphConfig):
            return info, store, None
        with locked(f"dataset:{info.name}", home):  # a second featurizer, added to the default store
            return info, store, add_graphs(store, graph, workers=workers, progress=progress).graphs
    text = os.fspath(name)
    if "://" in text:  # a release by URL: downloaded once into the cache, then read from there
        from crystal_data.release.remote import local_path

        path = local_path(text, offline=offline)
        return None, path, _graphs_of(path, graph)
    path = Path(text).expanduser()
    if not path.exists() and os.sep not in text and not text.startswith("."):
        raise ValueError(f"unknown dataset {text!r}; known: {', '.join(DATASETS)}, or the path of a store")
    if not (path / layout.MANIFEST).is_file():
        raise FileNotFoundError(f"{path}: not a finished store (no {layout.MANIFEST})")
    return None, path, _graphs_of(path, graph)


def _graphs_of(store: Path, graph: AnyGraphConfig | None) -> str | None:
    """The graph hash to read from a store that cannot be rebuilt here (a path, the corpus)."""
    if graph is None:
        return None
    available = json.loads((store / layout.MANIFEST).read_text())["graphs"]
    if graph.hash not in available:
        how = (
            f"add them with `crystal-data graphs {store} --kind {graph.kind}`"
            if isinstance(graph, AlignnGraphConfig)
            else "build one with that config"
        )
        raise ValueError(
            f"{store} has no graphs for {graph} (hash {graph.hash}); it has {', '.join(sorted(available))}. "
            f"A store given by path is not rebuilt: {how}"
        )
    return graph.hash


def _labelled_rows(store: Path, manifest: dict, target: str | None) -> np.ndarray:
    """Store rows with the target (every row without a target), in store order."""
    if target is None:
        return np.arange(manifest["counts"]["records"], dtype=np.int64)
    valid = [
        pq.read_table(store / layout.RECORDS_DIR / f"{shard['name']}.parquet", columns=[target])
        .column(target)
        .is_valid()
        .to_numpy(zero_copy_only=False)
        for shard in manifest["shards"]
    ]
    return np.flatnonzero(np.concatenate(valid)).astype(np.int64) if valid else np.zeros(0, np.int64)
