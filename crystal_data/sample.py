"""The embedded default input: 200 real Materials Project crystals shipped with the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SAMPLE_SOURCE = "mp"
SAMPLE_SOURCE_VERSION = "cgcnn-2018"
"""The CGCNN/CrysXPP snapshot of the Materials Project (about 2018)."""
SAMPLE_LABELS = {"formation_energy_per_atom": "eV/atom"}


def sample_dir() -> Path:
    """Folder of the embedded sample (CGCNN layout; see its README.md for attribution)."""
    return Path(str(resources.files("crystal_data").joinpath("sample")))
