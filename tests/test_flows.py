"""build-800k for real: a Prefect server on a free loopback port, a process work pool, `prefect deploy`,
a worker, `prefect deployment run build-800k/build-800k --watch`; a killed flow run resumed; the shard
tasks on a 2-worker Dask LocalCluster giving the same shards as the local run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from crystal_data.store import verify_store

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SAMPLE_ARGS = {
    "cif_folder": "sample",
    "cif_source": "mp",
    "cif_labels": {"formation_energy_per_atom": "eV/atom"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prefect_env(tmp_path_factory):
    """A real Prefect server (SQLite in a temporary PREFECT_HOME); every process started is stopped."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "CRYSGNN_TOOLKIT_DIR": str(REPO),
    }
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed in the finally below, after the server
    server = subprocess.Popen(
        [BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"the Prefect server did not start: {(home / 'server.log').read_text()[-2000:]}")
        yield env
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def run(args: list, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_deployment_runs_build_800k_from_the_cli(prefect_env, tmp_path):
    env = prefect_env
    assert (
        run([BIN / "prefect", "work-pool", "create", "local-pool", "--type", "process"], env).returncode == 0
    )
    deployed = run([BIN / "prefect", "--no-prompt", "deploy", "--name", "build-800k"], env)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    worker = subprocess.Popen(
        [BIN / "prefect", "worker", "start", "--pool", "local-pool", "--type", "process"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out = tmp_path / "store"
        params = [
            "-p",
            "cif_folder=sample",
            "-p",
            f"out={out}",
            "-p",
            "shard_size=100",
            "-p",
            "cif_source=mp",
        ]
        started = run(
            [BIN / "prefect", "deployment", "run", "build-800k/build-800k", *params, "--watch"], env
        )
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
    finally:
        os.killpg(worker.pid, signal.SIGINT)  # the worker ignores SIGTERM
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
    assert verify_store(out) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["records"] == 200 and manifest["counts"]["shards"] == 2
    assert manifest["sources"]["mp"]["records"] == 200
    assert (out / "duplicates.parquet").exists() and manifest["splits"]


FLOW_SCRIPT = """
import json, sys
from flows.build_800k import build_800k
summary = build_800k(out=sys.argv[1], **json.loads(sys.argv[2]))
print("SUMMARY " + json.dumps(summary))
"""
QUIET = {"workers": 1, "dedup": False, "split_scheme": None, **SAMPLE_ARGS}


def flow_args(out: Path, **options) -> list:
    """A flow run in its own process: this one never starts Prefect's runtime (its API log handler
    would outlive the server and break forked processes of later tests)."""
    return [sys.executable, "-c", FLOW_SCRIPT, out, json.dumps({**QUIET, **options})]


def summary_of(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.split("SUMMARY ", 1)[1].splitlines()[0])


def test_a_killed_flow_run_resumes_without_redoing_finished_shards(prefect_env, tmp_path):
    out = tmp_path / "store"
    args = flow_args(out, shard_size=10)
    process = subprocess.Popen(
        [str(a) for a in args], env=prefect_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while len(list((out / "records").glob("*.parquet"))) < 4 and process.poll() is None:
        assert time.monotonic() < deadline, "no shard was committed in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_at_kill = len(list((out / "records").glob("*.parquet")))
    assert 4 <= done_at_kill < 20 and not (out / "manifest.json").exists()
    summary = summary_of(run(args, prefect_env))
    assert summary["shards"] == 20 and summary["shards_done_before"] >= done_at_kill
    assert summary["records"] == 200 and verify_store(out) == []


def test_dask_local_cluster_builds_the_same_shards(prefect_env, tmp_path):
    local = summary_of(run(flow_args(tmp_path / "local", shard_size=50), prefect_env))
    dask = summary_of(run(flow_args(tmp_path / "dask", shard_size=50, dask_workers=2), prefect_env))
    assert local["records"] == dask["records"] == 200 and dask["shards"] == 4
    files = [
        json.loads((tmp_path / name / "manifest.json").read_text())["files"] for name in ("local", "dask")
    ]
    shards = {
        path: entry["sha256"] for path, entry in files[0].items() if path.startswith(("records/", "graphs/"))
    }
    assert len(shards) > 4 and shards == {p: e["sha256"] for p, e in files[1].items() if p in shards}
    assert verify_store(tmp_path / "dask") == []
