"""The DFT-plus-experiment protocol end to end: a DFT store (the sample) and a hand-placed `oqmd-exp`
folder; test on experiment, fine-tune from a finished run, train on both at once. Every reported number
is recomputed independently from the saved models and the datasets."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

import crystal_data
from crysgnn_models.cli import app
from crysgnn_models.distill.config import DistillConfig
from crysgnn_models.distill.evaluate import evaluate_saved
from crysgnn_models.distill.trainer import distill
from crysgnn_models.experiments.table import load_table, select
from crysgnn_models.training.checkpoint import load_checkpoint
from crystal_data.build import build_from_cif_folder
from crystal_data.home import HOME_ENV
from crystal_data.sample import sample_dir
from crystal_data.store.manifest import file_sha256
from tests.conftest import sample_settings

DFT_TARGET = "formation_energy_per_atom"
EXP_TARGET = "e_form_expt"
EXPERIMENTS = 40
TABLE = f"""
name: tiny-dft-bias
seeds: [0]
rows:
  - label: DFT only
    data: dft
    target: {DFT_TARGET}
    scheme: 60-20-20
    unit: eV/atom
    test_on: {{data: oqmd-exp, target: {EXP_TARGET}}}
  - {{label: DFT then exp, data: oqmd-exp, target: {EXP_TARGET}, scheme: 40-10-50, init_from: DFT only}}
  - label: DFT and exp
    data: oqmd-exp
    target: {EXP_TARGET}
    scheme: 40-10-50
    train_with: [{{data: dft, target: {DFT_TARGET}, scheme: 60-20-20}}]
columns:
  - {{student: cgcnn, alpha: 0.5}}
"""


@pytest.fixture
def placed(tmp_path, monkeypatch, sample_store):
    """A data home with an `oqmd-exp` folder (40 sample crystals, "experimental" values shifted from
    the DFT ones) and a private copy of the sample store as the DFT data."""
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    folder = tmp_path / "home/raw/oqmd-exp"
    folder.mkdir(parents=True)
    lines = (sample_dir() / "id_prop.csv").read_text().splitlines()[:EXPERIMENTS]
    for line in lines:
        shutil.copy(sample_dir() / f"{line.split(',')[0]}.cif", folder)
    shifted = [f"{uid},{float(value) - 0.1:.6f}" for uid, value in (line.split(",") for line in lines)]
    (folder / "id_prop.csv").write_text("\n".join(shifted) + "\n")
    dft = tmp_path / "dft"
    shutil.copytree(sample_store, dft)
    return dft


def run_folder(out, row: str):
    return out / "runs" / row / "cgcnn-D" / "seed-0"


def results_of(out, row: str) -> dict:
    return json.loads((run_folder(out, row) / "results.json").read_text())


def test_dft_bias_table_end_to_end(tmp_path, placed, tiny_teacher):
    (tmp_path / "table.yaml").write_text(TABLE)
    out = tmp_path / "out"
    args = ["experiment", str(tmp_path / "table.yaml"), "--out", str(out), "--teacher", str(tiny_teacher)]
    args += ["--data", f"dft={placed}", "--epochs", "2", "--batch-size", "16", "--device", "cpu"]
    fine_tune_first = CliRunner().invoke(app, [*args, "--no-progress", "--rows", "dft-then-exp"])
    assert fine_tune_first.exit_code == 2 and "dft-only/cgcnn-D/seed-0: the run" in fine_tune_first.output
    first = CliRunner().invoke(app, [*args, "--no-progress", "--rows", "DFT only", "--columns", "cgcnn-D"])
    assert first.exit_code == 0 and "1/1 runs finished" in first.output, first.output
    done = CliRunner().invoke(app, [*args, "--no-progress"])  # row 1 is done: rows 2 and 3 run
    assert done.exit_code == 0, done.output
    assert "3/3 runs finished" in done.output
    dft_only, fine_tuned, joint = (results_of(out, r) for r in ("dft-only", "dft-then-exp", "dft-and-exp"))

    # trained on DFT (120 train, 40 val), tested on every experimental value
    assert dft_only["data"]["sizes"] == {"train": 120, "val": 40, "test": EXPERIMENTS}
    assert dft_only["data"]["test_on"]["name"] == "oqmd-exp" and dft_only["data"]["test_on"]["size"] == 40
    start = run_folder(out, "dft-only") / "model.pt"
    every = evaluate_saved(start, "all", data="oqmd-exp", target=EXP_TARGET)
    assert len(every.target) == EXPERIMENTS
    assert dft_only["mae"]["test"] == pytest.approx(every.mae, rel=1e-6)
    assert evaluate_saved(start, "test").mae == pytest.approx(every.mae, rel=1e-9)  # its test is test_on

    # fine-tuned from that run: its weights and normaliser to start, the experimental 40-10-50 split
    assert fine_tuned["init"] == {"path": str(start), "sha256": file_sha256(start)}
    assert fine_tuned["normalizer"] == dft_only["normalizer"]
    assert fine_tuned["data"]["sizes"] == {"train": 16, "val": 4, "test": 20}
    exp_test = crystal_data.load("oqmd-exp", "test", EXP_TARGET, scheme="40-10-50")
    rescored = evaluate_saved(run_folder(out, "dft-then-exp") / "model.pt", "test")
    assert sorted(rescored.index.tolist()) == sorted(exp_test.rows.tolist())
    assert fine_tuned["mae"]["test"] == pytest.approx(rescored.mae, rel=1e-6)
    before = load_checkpoint(start, kind="student")["model"]
    after = load_checkpoint(run_folder(out, "dft-then-exp") / "model.pt", kind="student")["model"]
    assert any(not torch.equal(before[k], after[k]) for k in before)

    # trained on both at once: every epoch sees the 120 DFT and 16 experimental training crystals
    dft_train = crystal_data.load(placed, "train", DFT_TARGET, scheme="60-20-20")
    exp_train = crystal_data.load("oqmd-exp", "train", EXP_TARGET, scheme="40-10-50")
    assert joint["data"]["sizes"] == {"train": 136, "val": 4, "test": 20}
    assert joint["data"]["train_with"][0]["size"] == 120
    both = np.concatenate([dft_train.y, exp_train.y])
    assert joint["normalizer"]["mean"] == pytest.approx(float(both.mean()))
    assert joint["normalizer"]["std"] == pytest.approx(float(both.std()))
    # the teacher's embeddings were computed once per store: the DFT store and oqmd-exp's
    assert len(list((tmp_path / "home/teacher-embeddings").iterdir())) == 2

    summary = pl.read_csv(out / "results.csv")
    for row, results in (("DFT only", dft_only), ("DFT then exp", fine_tuned), ("DFT and exp", joint)):
        line = summary.filter(pl.col("row") == row).row(0, named=True)
        assert line["mae_mean"] == pytest.approx(results["mae"]["test"], rel=1e-9)

    # the same three options from `crysgnn distill`, all at once
    args = ["distill", "--data", "oqmd-exp", "--target", EXP_TARGET, "--split-scheme", "40-10-50"]
    args += ["--init", str(start), "--test-on", f"data=oqmd-exp,target={EXP_TARGET}", "--alpha", "0"]
    args += ["--train-with", f"data={placed},target={DFT_TARGET},scheme=60-20-20", "--epochs", "1"]
    args += ["--device", "cpu", "--no-progress", "--out", str(tmp_path / "cli")]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    results = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert results["data"]["sizes"] == {"train": 136, "val": 4, "test": EXPERIMENTS}
    assert results["init"]["sha256"] == file_sha256(start)
    refused = CliRunner().invoke(app, [*args[:-2], "--out", str(tmp_path / "bad"), "--test-on", "oqmd-exp"])
    assert refused.exit_code == 2 and "expected comma-separated key=value pairs" in refused.output


def test_bundled_dft_bias_table():
    table = load_table("paper-dft-bias")
    first, twenty, eighty = table.rows
    assert first.test_on == {"data": "oqmd-exp", "target": "e_form_expt"} and first.data == "mp2018"
    assert twenty.init_from == eighty.init_from == first.label
    assert (twenty.scheme, eighty.scheme) == ("17.5-2.5-80", "70-10-20")
    assert table.paper["DFT + 20 % exp., test on 80 % exp."]["alignn-D"] == 0.094
    assert len(table.columns) == 8


def test_rows_and_references_are_checked(tmp_path):
    bad = TABLE.replace("init_from: DFT only", "init_from: DFT and exp")
    (tmp_path / "later.yaml").write_text(bad)
    with pytest.raises(ValueError, match="starts from 'DFT and exp', not an earlier row"):
        load_table(tmp_path / "later.yaml")
    (tmp_path / "ref.yaml").write_text(
        TABLE.replace("{data: oqmd-exp, target:", "{dataset: oqmd-exp, target:")
    )
    with pytest.raises(ValueError, match="row 'DFT only': a dataset reference needs 'data' and 'target'"):
        load_table(tmp_path / "ref.yaml")
    table = load_table("paper-dft-bias")
    by_label = ["DFT + 80 % exp., test on 20 % exp.", "dft-20-exp-test-on-80-exp"]  # a label, a folder name
    picked = select(table, rows=by_label, columns=["alignn-D", "cgcnn"])
    assert [r.slug for r in picked.rows] == ["dft-20-exp-test-on-80-exp", "dft-80-exp-test-on-20-exp"]
    assert [c.key for c in picked.columns] == ["cgcnn", "alignn-D"]  # the table's order
    with pytest.raises(ValueError, match="no column 'CGCNN'; its columns: cgcnn, cgcnn-D, crysxpp"):
        select(table, columns=["CGCNN"])


def test_targets_of_one_run_share_a_unit(tmp_path, placed, monkeypatch):
    cifs = tmp_path / "cifs"
    cifs.mkdir()
    lines = (sample_dir() / "id_prop.csv").read_text().splitlines()[:12]
    for line in lines:
        shutil.copy(sample_dir() / f"{line.split(',')[0]}.cif", cifs)
    (cifs / "id_prop.csv").write_text("\n".join(lines) + "\n")
    other = tmp_path / "in-ev"
    build_from_cif_folder(
        cifs, other, sample_settings(label_units={DFT_TARGET: "eV"}), workers=1, progress=False
    )
    config = DistillConfig(
        data=str(placed),
        target=DFT_TARGET,
        out=str(tmp_path / "run"),
        alpha=0.0,
        scheme="60-20-20",
        epochs=1,
        device="cpu",
        train_with=[{"data": str(other), "target": DFT_TARGET, "split": "all"}],
    )
    with pytest.raises(ValueError, match="must share the target's unit: .*in eV/atom, .*in eV"):
        distill(config, progress=False)
    with pytest.raises(ValueError, match=r"the val data \(oqmd-exp, e_form_expt, split val\) is empty"):
        distill(
            DistillConfig(data="oqmd-exp", target=EXP_TARGET, out=str(tmp_path / "x"), alpha=0.0,
                          scheme="90-0-10", epochs=1, device="cpu"),
            progress=False,
        )  # fmt: skip
