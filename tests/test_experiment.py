"""`crysgnn experiment`: a two-cell table end to end on JARVIS files served by a loopback figshare;
the report's numbers are checked against the saved per-run results, and a rerun resumes."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from crysgnn_models.cli import app
from crysgnn_models.experiments.table import bundled_tables, load_table
from crystal_data.datasets.cache import OFFLINE_ENV
from crystal_data.home import HOME_ENV
from crystal_data.sources.jarvis import ENDPOINT_ENV
from tests.test_load import DFT_PATH, DFT_ZIP, MEGNET_PATH, MEGNET_ZIP, figshare
from tests.upstream import Upstream

TABLE = """
name: tiny
title: Two cells on loopback JARVIS
seeds: [0, 1]
rows:
  - {label: JARVIS formation energy, data: jarvis, target: formation_energy_peratom, unit: eV/atom}
columns:
  - {student: cgcnn, alpha: 0.0}
  - {student: cgcnn, alpha: 0.5}
paper:
  JARVIS formation energy: {cgcnn: 0.063, cgcnn-D: 0.047}
"""


def test_two_cell_table_end_to_end(tmp_path, monkeypatch, tiny_teacher):
    (tmp_path / "tiny.yaml").write_text(TABLE)
    out = tmp_path / "out"
    args = ["experiment", str(tmp_path / "tiny.yaml"), "--out", str(out), "--teacher", str(tiny_teacher)]
    args += ["--epochs", "2", "--batch-size", "8", "--device", "cpu", "--no-progress"]
    routes = {DFT_PATH: figshare(DFT_ZIP), MEGNET_PATH: figshare(MEGNET_ZIP)}
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    with Upstream(routes) as server:
        monkeypatch.setenv(ENDPOINT_ENV, server.url)
        done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "tiny: 4/4 runs finished" in done.output

    summary = pl.read_csv(out / "results.csv")
    assert summary.height == 2
    for column, paper in (("cgcnn", 0.063), ("cgcnn-D", 0.047)):
        maes = [
            json.loads(
                (out / "runs" / "jarvis-formation-energy" / column / f"seed-{s}" / "results.json").read_text()
            )["mae"]["test"]
            for s in (0, 1)
        ]
        line = summary.filter(pl.col("column") == column).row(0, named=True)
        assert line["seeds"] == 2 and line["paper"] == paper
        assert line["mae_mean"] == pytest.approx(np.mean(maes), rel=1e-9)
        assert line["mae_std"] == pytest.approx(np.std(maes, ddof=1), rel=1e-9)
    distilled = summary.filter(pl.col("column") == "cgcnn-D").row(0, named=True)
    vanilla = summary.filter(pl.col("column") == "cgcnn").row(0, named=True)
    expected = 100 * (vanilla["mae_mean"] - distilled["mae_mean"]) / vanilla["mae_mean"]
    assert distilled["improvement_pct"] == pytest.approx(expected)
    assert distilled["paper_improvement_pct"] == pytest.approx(100 * (0.063 - 0.047) / 0.063)
    markdown = (out / "results.md").read_text()
    assert f"{vanilla['mae_mean']:.4g} ± {vanilla['mae_std']:.2g} (0.063)" in markdown
    assert (out / "results.png").stat().st_size > 0

    # everything is cached and finished: a rerun trains nothing, offline, and writes the same table
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/*/results.json")}
    monkeypatch.setenv(ENDPOINT_ENV, "http://127.0.0.1:9")
    again = CliRunner().invoke(app, [*args, "--offline"])
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert pl.read_csv(out / "results.csv").equals(summary)


def test_bundled_tables_hold_the_papers_numbers():
    assert {"paper-main", "paper-sparse", "paper-finetune", "mp33k"} <= set(bundled_tables())
    main = load_table("paper-main")
    assert len(main.rows) == 11 and len(main.columns) == 8
    assert main.paper["JARVIS formation energy"]["alignn-D"] == 0.035
    sparse = load_table("paper-sparse")
    assert {row.scheme for row in sparse.rows} == {"20-10-70", "40-10-50", "60-10-30"}
    with pytest.raises(ValueError, match="unknown table"):
        load_table("no-such-table")
