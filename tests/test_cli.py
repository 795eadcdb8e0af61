from typer.testing import CliRunner

from crysgnn_models.cli import app as crysgnn_app
from crystal_data.cli import app

runner = CliRunner()


def test_demo_builds_verifies_and_summarises(tmp_path):
    out = tmp_path / "demo-store"
    result = runner.invoke(app, ["demo", "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "inputs 200 records 200 rejected 0" in text
    assert "verified" in text and "cubic" in text and "Graph sizes" in text
    assert (tmp_path / "demo-store-summary.png").stat().st_size > 10_000


def test_build_info_verify(tmp_path, sample_store):
    result = runner.invoke(app, ["info", str(sample_store), "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 0 and "records 200" in result.output
    assert runner.invoke(app, ["verify", str(sample_store)]).exit_code == 0
    (tmp_path / "not-a-store").mkdir()
    failed = runner.invoke(app, ["verify", str(tmp_path / "not-a-store")])
    assert failed.exit_code == 1 and "missing" in failed.output


def test_build_rejects_a_missing_folder_clearly(tmp_path):
    result = runner.invoke(app, ["build", "--from-cif", str(tmp_path / "nope"), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "not a folder" in " ".join(result.output.split())


def test_untagged_800k_layout_from_cli(tmp_path):
    from tests.conftest import FIXTURES

    out = tmp_path / "store"
    args = ["build", "--from-cif", str(FIXTURES / "untagged_800k"), "--out", str(out), "--workers", "1"]
    result = runner.invoke(app, [*args, "--source", "crysgnn800k", "--no-progress"])
    assert result.exit_code == 0, result.output
    import crystal_data

    store = crystal_data.open(out)
    assert store.records["uid"].to_list() == [f"crysgnn800k:{k}" for k in range(9)]
    assert store.manifest["build"]["plan"]["layout"] == "untagged-800k"
    assert store.records["spacegroup_number"].to_list() == [225, 186, 136, 14, 167, 227, 141, 186, 225]


def test_crysgnn_env():
    result = runner.invoke(crysgnn_app, ["env", "--device", "cpu"])
    assert result.exit_code == 0 and "torch 2." in result.output and "device cpu" in result.output


def test_build_with_dedup_and_leakage_check(tmp_path, sample_store):
    from tests.conftest import FIXTURES

    out = tmp_path / "store"
    args = ["build", "--from-cif", str(FIXTURES / "untagged_800k"), "--out", str(out), "--workers", "1"]
    result = runner.invoke(app, [*args, "--no-progress", "--dedup"])
    assert result.exit_code == 0, result.output
    assert "9 records, 9 canonical, 0 duplicates" in " ".join(result.output.split())
    result = runner.invoke(
        app, ["dedup", str(out), "--against", str(sample_store), "--workers", "1", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "leakage: 9 of 9 records match" in " ".join(result.output.split())
    assert runner.invoke(app, ["verify", str(out)]).exit_code == 0


def test_info_reports_dedup(tmp_path, sample_store):
    import shutil

    copy = tmp_path / "store"
    shutil.copytree(sample_store, copy)
    assert runner.invoke(app, ["dedup", str(copy), "--workers", "1", "--no-progress"]).exit_code == 0
    result = runner.invoke(app, ["info", str(copy)])
    assert "dedup: 200 canonical, 0 duplicates (none)" in " ".join(result.output.split())
