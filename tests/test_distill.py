"""Distillation end to end on the sample store: the frozen teacher and its cached embeddings, selection
on validation, the test split scored once, results that match their predictions, evaluate, embed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

import crystal_data
from crysgnn_models.cli import app
from crysgnn_models.distill.config import DistillConfig
from crysgnn_models.distill.evaluate import evaluate_saved
from crysgnn_models.distill.teacher import load_teacher, teacher_embeddings
from crysgnn_models.distill.trainer import distill
from crysgnn_models.embed import embed_files, embed_store
from crysgnn_models.loader import GraphStream
from crysgnn_models.models.crysgnn import CrysGNN, CrysGNNConfig
from crysgnn_models.training.checkpoint import load_checkpoint
from crystal_data.graphs.config import AlignnGraphConfig
from crystal_data.home import HOME_ENV
from crystal_data.store.add_graphs import add_graphs

TARGET = "formation_energy_per_atom"
SCHEME = "60-20-20"


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("teacher-cache")


@pytest.fixture(scope="module")
def store(sample_store, tmp_path_factory):
    """A private copy of the sample store: loading splits writes split files into it."""
    copy = tmp_path_factory.mktemp("distill") / "sample"
    shutil.copytree(sample_store, copy)
    return copy


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    """Split files and teacher embeddings go to a temporary data home, not the user's."""
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))


def run(store, out, teacher=None, alpha=0.5, **overrides):
    base = dict(
        data=str(store),
        target=TARGET,
        out=str(out),
        teacher=str(teacher) if teacher else None,
        alpha=alpha,
        scheme=SCHEME,
        epochs=4,
        batch_size=32,
        device="cpu",
    )
    return distill(DistillConfig(**{**base, **overrides}), progress=False)


def test_teacher_is_frozen_and_batch_independent(tiny_teacher, store):
    teacher = load_teacher(tiny_teacher)
    assert not teacher.model.training and not teacher.reference
    assert not any(p.requires_grad for p in teacher.model.parameters())
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    stream = GraphStream(store, batch_size=50, shuffle=False)
    with torch.enable_grad():
        first = [teacher.embed(batch) for batch in stream]
    assert not any(e.requires_grad for e in first)
    after = teacher.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm running stats untouched
    # eval-mode BatchNorm: a crystal's embedding does not depend on the rest of its batch
    alone = teacher.embed(next(iter(GraphStream(store, batch_size=1, shuffle=False))))
    torch.testing.assert_close(alone, first[0][: len(alone)], atol=1e-5, rtol=1e-5)


def test_cached_embeddings_are_the_teachers(tiny_teacher, store, cache_root):
    teacher = load_teacher(tiny_teacher)
    folder = teacher_embeddings(teacher, store, cache_root=cache_root)
    assert teacher_embeddings(teacher, store, cache_root=cache_root) == folder  # a cache hit
    for batch in GraphStream(store, batch_size=64, shuffle=True, seed=3, teacher=folder):
        torch.testing.assert_close(batch.teacher, teacher.embed(batch), atol=1e-5, rtol=1e-5)


def test_reference_checkpoint_becomes_a_compat_teacher(tmp_path):
    reference = CrysGNN(CrysGNNConfig())
    state = {k.replace("encoder.", ""): v for k, v in reference.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "crysgnn_state_checkpoint_v1.pth.tar")
    teacher = load_teacher(tmp_path / "crysgnn_state_checkpoint_v1.pth.tar")
    assert teacher.reference and teacher.model.config.compat
    torch.testing.assert_close(teacher.model.fc_sg.weight, reference.fc_sg.weight)


def test_distilled_run_selects_on_validation_and_scores_test_once(tiny_teacher, store, tmp_path):
    result = run(store, tmp_path / "d", tiny_teacher)
    results = json.loads((tmp_path / "d" / "results.json").read_text())
    history = pl.read_csv(tmp_path / "d" / "history.csv")
    assert history.height == 4 and history["distill_loss"].min() > 0
    assert result.best_epoch == int(history["epoch"][int(history["val_mae"].arg_min())])
    # the reported validation MAE is the best epoch's, and every MAE matches the saved predictions
    assert results["mae"]["val"] == pytest.approx(history["val_mae"].min(), rel=1e-5)
    predictions = pl.read_parquet(tmp_path / "d" / "predictions.parquet")
    for split, mae in results["mae"].items():
        part = predictions.filter(pl.col("split") == split)
        assert mae == pytest.approx(float((part["prediction"] - part["target"]).abs().mean()), rel=1e-9)
    train = crystal_data.load(store, "train", TARGET, scheme=SCHEME)
    assert results["normalizer"]["mean"] == pytest.approx(float(np.mean(train.y)))
    assert results["normalizer"]["std"] == pytest.approx(float(np.std(train.y)))
    assert results["data"]["sizes"] == {"train": 120, "val": 40, "test": 40}
    assert results["teacher"]["sha256"] == load_teacher(tiny_teacher).sha256
    state = load_checkpoint(tmp_path / "d" / "model.pt", kind="student")
    assert state["student"] == "cgcnn"
    rescored = evaluate_saved(tmp_path / "d" / "model.pt", "test", device="cpu")
    assert rescored.mae == pytest.approx(results["mae"]["test"], rel=1e-6)
    assert (tmp_path / "d" / "parity.png").stat().st_size > 0


def test_alpha_zero_is_vanilla_and_needs_no_teacher(store, tiny_teacher, tmp_path):
    vanilla = run(store, tmp_path / "v", alpha=0.0)
    distilled = run(store, tmp_path / "d", tiny_teacher, alpha=0.5)
    assert vanilla.results["teacher"] is None
    assert vanilla.mae["test"] != distilled.mae["test"]  # same seed and data: only the loss differs
    with pytest.raises(ValueError, match="--teacher"):
        run(store, tmp_path / "x", alpha=0.5)


def test_cli_distill_and_evaluate(store, tiny_teacher, tmp_path):
    args = ["distill", "--data", str(store), "--target", TARGET, "--out", str(tmp_path / "m")]
    args += ["--teacher", str(tiny_teacher), "--split-scheme", SCHEME, "--epochs", "2", "--device", "cpu"]
    done = CliRunner().invoke(app, [*args, "--no-progress"])
    assert done.exit_code == 0, done.output
    assert "cgcnn alpha=0.5: MAE train" in done.output
    scored = CliRunner().invoke(app, ["evaluate", str(tmp_path / "m" / "model.pt"), "--split", "val"])
    val = json.loads((tmp_path / "m" / "results.json").read_text())["mae"]["val"]
    assert scored.exit_code == 0 and f"val: MAE {val:.6f} over 40 crystals" in scored.output


def test_embed_store_and_files(tiny_teacher, store, tmp_path):
    teacher = load_teacher(tiny_teacher)
    table = embed_store(teacher, store, tmp_path / "e.parquet")
    store = crystal_data.open(store)
    assert table.num_rows == len(store) and table.column("uid").to_pylist() == store.records["uid"].to_list()
    row = table.slice(5, 1).to_pylist()[0]
    atoms = np.array(row["atom_embeddings"])
    assert atoms.shape == (len(store[5].atomic_numbers), 64)
    np.testing.assert_allclose(np.linalg.norm(atoms, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(row["crystal_embedding"], atoms.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 200
    from crystal_data.sample import sample_dir

    cifs = sorted(sample_dir().glob("*.cif"))[:3]
    bad = tmp_path / "broken.cif"
    bad.write_text("data_x\n_cell_length_a 3\n")
    files, problems = embed_files(teacher, [*cifs, bad], tmp_path / "f.parquet")
    assert files.column("uid").to_pylist() == [f"files:{p.stem}" for p in cifs]
    assert len(problems) == 1 and "broken.cif" in problems[0]
    by_uid = {
        u.split(":")[1]: v
        for u, v in zip(table.column("uid").to_pylist(), table.column("crystal_embedding").to_pylist())
    }
    np.testing.assert_allclose(
        files.column("crystal_embedding").to_pylist()[0], by_uid[cifs[0].stem], atol=1e-5
    )


@pytest.mark.parametrize(
    ("student", "alpha", "kwargs"),
    [
        ("crysxpp", 0.5, {}),
        ("gatgnn", 0.5, {}),
        ("alignn", 0.5, {"hidden": 16, "embedding": 8, "num_alignn_layers": 1, "num_gcn_layers": 1}),
        ("alignn", 0.0, {"hidden": 16, "embedding": 8, "num_alignn_layers": 1, "num_gcn_layers": 1}),
        ("crysgnn-finetuned", 0.0, {}),
    ],
)
def test_every_student_trains_from_the_cli(student, alpha, kwargs, store, tiny_teacher, tmp_path):
    if student == "alignn" and "alignn" not in {
        g["kind"] for g in crystal_data.open(store).manifest["graphs"].values()
    }:
        command = ["distill", "--data", str(store), "--target", TARGET, "--student", "alignn", "--alpha", "0"]
        missing = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "x")])
        assert missing.exit_code == 2 and "crystal-data graphs" in missing.output
        add_graphs(store, AlignnGraphConfig(), progress=False)
    args = [
        "distill",
        "--data",
        str(store),
        "--target",
        TARGET,
        "--out",
        str(tmp_path / "m"),
        "--student",
        student,
    ]
    args += [
        "--alpha",
        str(alpha),
        "--split-scheme",
        SCHEME,
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--no-progress",
    ]
    args += ["--teacher", str(tiny_teacher), "--student-args", json.dumps(kwargs)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    results = json.loads((tmp_path / "m" / "results.json").read_text())
    assert results["student"] == student and np.isfinite(results["mae"]["test"])
    rescored = evaluate_saved(tmp_path / "m" / "model.pt", "test", device="cpu")
    assert rescored.mae == pytest.approx(results["mae"]["test"], rel=1e-6)
