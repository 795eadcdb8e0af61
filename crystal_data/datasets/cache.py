"""Where the datasets live under ``data_home()``, and the lock that keeps two processes from building
or writing the same thing at once (every DDP rank calling ``load`` on a fresh machine).

::

    data_home()/raw/<source>/...              downloads, through the source clients (docs/sources.md)
    data_home()/raw/oqmd-exp/                 the OQMD-EXP folder, placed by hand
    data_home()/stores/<dataset>/<graph-hash>/  one store per featurizer config
    data_home()/locks/                        lock files (flock); safe to delete when nothing runs
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from crystal_data.home import data_home

log = logging.getLogger("crystal_data.load")

OFFLINE_ENV = "CRYSTAL_DATA_OFFLINE"


def raw_root(home: Path | None = None) -> Path:
    return (home or data_home()) / "raw"


def stores_root(home: Path | None = None) -> Path:
    return (home or data_home()) / "stores"


def offline_default() -> bool:
    """``$CRYSTAL_DATA_OFFLINE`` set to 1/true/yes/on: never touch the network."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@contextmanager
def locked(key: str, home: Path | None = None) -> Iterator[None]:
    """Hold an exclusive lock named by ``key`` (a dataset name or a store path) until the block ends;
    another process asking for the same key waits."""
    folder = (home or data_home()) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(key.encode()).hexdigest()[:20]
    with open(folder / f"{name}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class DatasetNotAvailable(FileNotFoundError):
    """A dataset that is neither cached nor obtainable now; the message says what to place where."""


def is_ready(store: Path) -> bool:
    """A finished dataset store: built, with its entries and paper splits written (the manifest's
    ``dataset`` section is set last)."""
    manifest = store / "manifest.json"
    return manifest.is_file() and bool(json.loads(manifest.read_text()).get("dataset"))


def announce(name: str, store: Path, graph_config: dict) -> None:
    """Log why a dataset store is being built: first use, a featurizer config not cached yet (naming
    the cached ones), or an unfinished build being resumed."""
    cached = sorted(p.name for p in store.parent.glob("*") if p != store and is_ready(p))
    if store.exists():
        log.info("%s: resuming the unfinished build in %s", name, store)
    elif cached:
        log.info(
            "%s: graph config %s (%s) is not cached; building it (cached configs: %s)",
            name,
            store.name,
            json.dumps(graph_config, sort_keys=True),
            ", ".join(cached),
        )
    else:
        log.info("%s: first use; building %s (graph config %s)", name, store, store.name)
