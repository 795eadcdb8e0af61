"""crystal_data: public crystal databases turned into sharded, checksummed, CrysGNN-ready graphs.

>>> import crystal_data
>>> store = crystal_data.open("demo-store")      # or a release: a folder or https://.../<version>/
>>> store[0].edge_index.shape
>>> train = crystal_data.load("jarvis", split="train", target="formation_energy_peratom")
"""

from importlib.metadata import PackageNotFoundError, version

from crystal_data.dataset import CrystalDataset
from crystal_data.loading import load
from crystal_data.record import CrystalRecord
from crystal_data.release.remote import open_release
from crystal_data.store import CrystalGraphSample, Store, open_store, verify_store

open = open_release  # noqa: A001 - the public name is crystal_data.open(STORE, a release folder or URL)

try:
    __version__ = version("crysgnn-toolkit")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "CrystalDataset",
    "CrystalGraphSample",
    "CrystalRecord",
    "Store",
    "load",
    "open",
    "open_store",
    "verify_store",
    "__version__",
]
