"""Releases: a finished store frozen as ``DEST/<version>/`` with a dataset card, a changelog and the
sha256 of every file; read back by path or URL (docs/releases.md)."""

from crystal_data.release.destination import ReleaseError, ReleaseExists
from crystal_data.release.publish import ReleaseReport, publish_release
from crystal_data.release.remote import fetch_release, open_release

__all__ = [
    "ReleaseError",
    "ReleaseExists",
    "ReleaseReport",
    "fetch_release",
    "open_release",
    "publish_release",
]
