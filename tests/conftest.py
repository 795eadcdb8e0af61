"""Shared fixtures: the embedded sample, a store built from it, and the real 33K set when present."""

from __future__ import annotations

import csv
import tarfile
from pathlib import Path

import pytest

from crystal_data.build import BuildSettings, build_from_cif_folder
from crystal_data.sample import SAMPLE_LABELS, SAMPLE_SOURCE, SAMPLE_SOURCE_VERSION, sample_dir

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MP_TARBALL = SHARED_DATA / "mp-formation-energy-33k.tar.gz"
FIXTURES = Path(__file__).resolve().parent / "data"


def sample_settings(**overrides) -> BuildSettings:
    base = dict(source=SAMPLE_SOURCE, source_version=SAMPLE_SOURCE_VERSION, label_units=dict(SAMPLE_LABELS))
    return BuildSettings(**{**base, **overrides})


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Test tensors are tiny: one thread avoids OpenMP hand-offs, which stall on a shared, busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def sample_labels() -> dict[str, float]:
    with open(sample_dir() / "id_prop.csv", newline="") as handle:
        return {row[0]: float(row[1]) for row in csv.reader(handle)}


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stores") / "sample"
    build_from_cif_folder(sample_dir(), out, sample_settings(), workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def shared_cifs(tmp_path_factory) -> list[Path]:
    """Every 100th CIF of the shared 33K Materials Project set (332 files), extracted once."""
    if not MP_TARBALL.exists():
        pytest.skip(f"{MP_TARBALL} not present (shared real data is only on development machines and CI)")
    out = tmp_path_factory.mktemp("mp33k")
    with tarfile.open(MP_TARBALL, mode="r|gz") as archive:  # one streaming pass: no seeking in the gzip
        cifs = (m for m in archive if m.name.endswith(".cif"))
        for k, member in enumerate(cifs):
            if k % 100 == 0:
                archive.extract(member, out, filter="data")
    return sorted(out.rglob("*.cif"))


@pytest.fixture(scope="session")
def shared_polymorphs(tmp_path_factory) -> Path:
    """Every SiO2 and TiO2 crystal of the shared 33K set (171 files), in one folder."""
    import re

    from pymatgen.core import Composition

    if not MP_TARBALL.exists():
        pytest.skip(f"{MP_TARBALL} not present (shared real data is only on development machines and CI)")
    out = tmp_path_factory.mktemp("polymorphs")
    formula_sum = re.compile(rb"_chemical_formula_sum\s+'?([^'\n]+)'?")
    with tarfile.open(MP_TARBALL, mode="r|gz") as archive:
        for member in archive:
            if not member.name.endswith(".cif"):
                continue
            data = archive.extractfile(member).read()
            match = formula_sum.search(data)
            if match and Composition(match.group(1).decode()).reduced_formula in ("SiO2", "TiO2"):
                (out / Path(member.name).name).write_bytes(data)
    return out


@pytest.fixture(scope="session")
def tiny_teacher(sample_store, tmp_path_factory) -> Path:
    """A CrysGNN checkpoint (2 convolutions, 64-dim) pretrained for a few steps on the sample store."""
    from crysgnn_models.pretrain.config import PretrainConfig
    from crysgnn_models.pretrain.trainer import pretrain

    out = tmp_path_factory.mktemp("teacher")
    config = PretrainConfig(
        data=str(sample_store), out=str(out), epochs=1, batch_size=32, device="cpu", model={"n_conv": 2}
    )
    return pretrain(config, progress=False).out / "last.pt"
