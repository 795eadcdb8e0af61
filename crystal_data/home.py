"""Where crystal-data keeps downloaded upstream files when no folder is given.

``data_home()`` is ``$CRYSTAL_DATA_HOME`` when set, else ``$XDG_CACHE_HOME/crystal-data``, else
``~/.cache/crystal-data``. It is never inside an installed package: jarvis-tools caches its zips in
``site-packages/jarvis/db``, where a broken download survives reinstalls, is shared by every user of
the environment and may need root to remove (docs/sources-jarvis.md).
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "CRYSTAL_DATA_HOME"


def data_home() -> Path:
    """The cache root for downloaded data, absolute (not created here).

    Raises ``ValueError`` when ``$CRYSTAL_DATA_HOME`` points into a ``site-packages`` or
    ``dist-packages`` folder."""
    explicit = os.environ.get(HOME_ENV)
    if explicit:
        home = Path(explicit).expanduser().resolve()
        if {"site-packages", "dist-packages"} & set(home.parts):
            raise ValueError(f"${HOME_ENV}={explicit} is inside an installed package; choose a cache folder")
        return home
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG base-directory spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return (base / "crystal-data").resolve()
