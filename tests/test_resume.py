"""A build killed with SIGKILL resumes from its finished shards and ends byte-identical."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import crystal_data
from crystal_data.build import build_from_cif_folder
from crystal_data.sample import SAMPLE_SOURCE, SAMPLE_SOURCE_VERSION, sample_dir
from tests.conftest import sample_settings

CLI = [sys.executable, "-m", "crystal_data.cli"]


def build_command(out: Path) -> list[str]:
    return [
        *CLI, "build", "--from-cif", str(sample_dir()), "--out", str(out), "--workers", "1",
        "--shard-size", "10", "--source", SAMPLE_SOURCE, "--source-version", SAMPLE_SOURCE_VERSION,
        "--label", "formation_energy_per_atom:eV/atom", "--no-progress",
    ]  # fmt: skip


def test_killed_build_resumes_to_identical_store(tmp_path):
    reference = tmp_path / "reference"
    build_from_cif_folder(sample_dir(), reference, sample_settings(shard_size=10), progress=False)

    out = tmp_path / "killed"
    process = subprocess.Popen(build_command(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = out / "records" / "part-00004.parquet"
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = sorted(p.name for p in (out / "records").glob("*.parquet"))
    assert 5 <= len(finished) < 20, "the build was not interrupted mid-way"
    assert not (out / "manifest.json").exists()
    with pytest.raises(FileNotFoundError, match="unfinished build"):
        crystal_data.open(out)

    rerun = subprocess.run(build_command(out), capture_output=True, text=True, check=True)
    assert f"{len(finished)} of 20 shards were already done" in " ".join(rerun.stdout.split())
    ours = json.loads((out / "manifest.json").read_text())
    theirs = json.loads((reference / "manifest.json").read_text())
    assert ours["files"] == theirs["files"]  # every file, byte for byte (sha256)
    assert ours["counts"] == theirs["counts"] and ours["counts"]["records"] == 200
    assert not (out / ".build").exists()
    assert crystal_data.verify_store(out) == []
