"""CrysGNN pretraining end to end on the sample store: checkpoints, exact mid-epoch resume, logs, CLI,
and a DDP step with two CPU processes (torchrun, gloo)."""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from crysgnn_models.cli import app
from crysgnn_models.pretrain.config import PretrainConfig
from crysgnn_models.pretrain.trainer import pretrain
from crysgnn_models.training.checkpoint import load_checkpoint, store_fingerprint

SMALL = {"n_conv": 2}


def config(store: Path, out: Path, **overrides) -> PretrainConfig:
    base = dict(
        data=str(store), out=str(out), epochs=2, batch_size=32, device="cpu", model=SMALL, log_every=1
    )
    return PretrainConfig(**{**base, **overrides})


def test_resume_mid_epoch_equals_an_uninterrupted_run(sample_store, tmp_path):
    whole = pretrain(config(sample_store, tmp_path / "whole"), progress=False)
    assert whole.steps == 2 * math.ceil(200 / 32)  # 7 batches per epoch, the last one of 8 crystals
    cut = pretrain(config(sample_store, tmp_path / "cut", max_steps=10), progress=False)
    assert cut.steps == 10 and cut.epochs == 1  # stopped 3 batches into the second epoch
    state = load_checkpoint(tmp_path / "cut" / "last.pt", kind="crysgnn")
    assert (state["step"], state["epoch"], state["loader"]["step"]) == (10, 1, 3)
    resumed = pretrain(config(sample_store, tmp_path / "cut"), resume=True, progress=False)
    assert (resumed.steps, resumed.epochs) == (whole.steps, 2)
    a = load_checkpoint(tmp_path / "whole" / "last.pt")
    b = load_checkpoint(tmp_path / "cut" / "last.pt")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for key, value in a["optimizer"]["state"].items():
        assert torch.equal(value["exp_avg"], b["optimizer"]["state"][key]["exp_avg"])
    with open(tmp_path / "cut" / "log.csv", newline="") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == list(range(1, whole.steps + 1))  # the log continues without repeats or holes


def test_checkpoint_holds_config_data_hash_and_optimiser(sample_store, tmp_path):
    out = tmp_path / "run"
    result = pretrain(config(sample_store, out, epochs=1), progress=False)
    state = load_checkpoint(out / "best.pt", kind="crysgnn")
    assert state["data"]["manifest_sha256"] == store_fingerprint(sample_store)
    assert state["config"]["batch_size"] == 32 and state["model_config"]["n_conv"] == 2
    assert state["optimizer"]["state"] and state["epoch"] == 1 and state["step"] == result.steps
    assert math.isfinite(state["epoch_loss"]) and state["epoch_loss"] == state["best_loss"]
    assert (out / "loss.png").stat().st_size > 0
    with open(out / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {"loss", "adjacency", "features", "spacegroup", "contrastive", "graphs_per_s"} <= set(rows[0])
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain(config(sample_store, out, epochs=1), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        pretrain(config(sample_store, out, epochs=2, batch_size=16), resume=True, progress=False)


def test_loss_goes_down(sample_store, tmp_path):
    result = pretrain(config(sample_store, tmp_path, epochs=8, batch_size=50, lr=3e-3), progress=False)
    with open(tmp_path / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    first = sum(float(r["loss"]) for r in rows if r["epoch"] == "0") / 4
    last = sum(float(r["loss"]) for r in rows if r["epoch"] == "7") / 4
    assert last < 0.8 * first, (first, last, result)


def test_cli_pretrain_and_resume(sample_store, tmp_path):
    out = tmp_path / "cli"
    args = ["pretrain", "--data", str(sample_store), "--out", str(out), "--epochs", "1", "--batch-size", "64"]
    args += ["--device", "cpu", "--n-conv", "2", "--no-progress"]
    first = CliRunner().invoke(app, [*args, "--max-steps", "2"])
    assert first.exit_code == 0, first.output
    assert "pretrained 2 steps" in first.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = CliRunner().invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0 and "pretrained 4 steps (1 epochs)" in resumed.output


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_ddp_two_cpu_processes(sample_store, tmp_path):
    """torchrun, 2 processes, gloo: each rank takes its own half of every epoch, gradients are averaged
    (the trainer checks the replicas are identical at every checkpoint), rank 0 writes."""
    crysgnn = shutil.which("crysgnn", path=str(Path(sys.executable).parent))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["--no-python", crysgnn, "pretrain", "--data", str(sample_store), "--out", str(tmp_path)]
    command += ["--epochs", "1", "--batch-size", "16", "--device", "cpu", "--n-conv", "2", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    state = load_checkpoint(tmp_path / "last.pt", kind="crysgnn")
    # 200 crystals, 2 ranks x 16: 6 full steps (192), then the last 8 split 4 + 4: 7 steps per rank
    assert state["world_size"] == 2 and state["step"] == 7
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
