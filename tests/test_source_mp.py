"""Materials Project through the real mp-api client against a loopback server speaking MP's format."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from crystal_data.cli import app
from crystal_data.normalize import normalize
from crystal_data.record import CrystalRecord
from crystal_data.sources import mp
from crystal_data.sources.base import FetchOptions
from crystal_data.sources.http import FetchError
from crystal_data.sources.landing import RawZone
from crystal_data.sources.politeness import Politeness
from crystal_data.store import open_store, verify_store
from tests.fake_mp import API_KEY, DB_VERSION, corpus, serve
from tests.upstream import Fault, Reply

FAST = Politeness(
    requests_per_second=1000, concurrency=2, timeout_s=1.0, max_retries=4, backoff_s=0.01, backoff_max_s=0.05
)
N_GENERATED = 250
SUMMARY = "/materials/summary/"


def options(url: str, **kw) -> FetchOptions:
    extra = {"api_key": API_KEY, **kw.pop("extra", {})}
    return FetchOptions(endpoint=url, politeness=FAST, page_size=100, progress=False, extra=extra, **kw)


def fetched_ids(zone: RawZone) -> list[str]:
    return [doc["material_id"] for page in zone.pages() for doc in page.json()["data"]]


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return corpus(N_GENERATED)


def expected_ids(docs: list[dict], deprecated: bool = False) -> list[str]:
    return [d["material_id"] for d in docs if deprecated or not d["deprecated"]]


def test_fetch_survives_faults_and_every_record_arrives_once(tmp_path, docs):
    with serve(docs) as server:
        server.fault(Fault("status", status=429, headers={"Retry-After": "0"}), path=SUMMARY)
        server.fault(Fault("status", status=500), path=SUMMARY)
        server.fault(Fault("drop"), path=SUMMARY)
        server.fault(Fault("slow", seconds=1.5), path=SUMMARY)
        server.fault(Fault("truncate_json"), path=SUMMARY)
        zone = RawZone(tmp_path, "mp")
        report = mp.fetch(zone, options(server.url))
        assert server.pending_faults() == 0
    assert report.complete and report.records == len(expected_ids(docs)) == N_GENERATED + 6
    assert fetched_ids(zone) == expected_ids(docs)
    assert all(page.meta["source_version"] == DB_VERSION for page in zone.pages())


def test_records_keep_the_cells_labels_and_reject_disorder(tmp_path, docs):
    with serve(docs) as server:
        mp.fetch(RawZone(tmp_path, "mp"), options(server.url))
    out = {r.source_id: r for r in mp.records(RawZone(tmp_path, "mp"))}  # no server now: offline
    zno = out["mp-2133"]
    a, b, c = np.linalg.norm(zno.lattice, axis=1)
    gamma = np.degrees(np.arccos(zno.lattice[0] @ zno.lattice[1] / (a * b)))
    assert (a, b, c) == pytest.approx((3.25, 3.25, 5.21), abs=1e-9)
    assert gamma == pytest.approx(120.0, abs=1e-9)
    assert sorted(zno.atomic_numbers.tolist()) == [8, 8, 30, 30]
    assert out["mp-149"].nsites == 8 and out["mp-149"].labels["formation_energy_per_atom"] == pytest.approx(
        -1.008
    )
    assert out["mp-999004"].labels["formation_energy_per_atom"] is None
    assert out["mp-999003"].code == "partial_occupancy"
    assert out["mp-149"].source_version == DB_VERSION and out["mp-149"].uid == "mp:mp-149"


def test_policy_is_applied_even_when_the_server_ignores_the_filter(tmp_path, docs):
    with serve(docs, honour_filters=False) as server:
        mp.fetch(RawZone(tmp_path, "mp"), options(server.url, extra={"theoretical": "exclude"}))
        assert server.requests[-1].query["deprecated"] == "False"
        assert server.requests[-1].query["theoretical"] == "False"
    out = {r.source_id: r for r in mp.records(RawZone(tmp_path, "mp"))}
    assert out["mp-999001"].code == "excluded_deprecated"
    assert out["mp-999002"].code == "excluded_theoretical"


def test_include_deprecated(tmp_path, docs):
    with serve(docs) as server:
        mp.fetch(RawZone(tmp_path, "mp"), options(server.url, extra={"deprecated": "include"}))
        assert "deprecated" not in server.requests[-1].query
    assert fetched_ids(RawZone(tmp_path, "mp")) == expected_ids(docs, deprecated=True)


def test_a_limited_fetch_resumes_to_the_same_pages(tmp_path, docs):
    with serve(docs) as server:
        whole = RawZone(tmp_path / "whole", "mp")
        mp.fetch(whole, options(server.url))
        part = RawZone(tmp_path / "part", "mp")
        first = mp.fetch(part, options(server.url, limit=150))
        assert (first.records, first.complete) == (150, False)
        server.requests.clear()
        second = mp.fetch(part, options(server.url))
        skips = sorted(int(r.query["_skip"]) for r in server.requests if r.path == SUMMARY)
        assert second.complete and skips[0] == 150  # resumed where the first fetch stopped
        server.requests.clear()
        assert mp.fetch(part, options(server.url)).new_pages == 0
        assert not [r for r in server.requests if r.path == SUMMARY]
    assert fetched_ids(part) == fetched_ids(whole) == expected_ids(docs)


def test_the_api_key_never_leaves_the_header(tmp_path, docs, caplog):
    caplog.set_level(logging.DEBUG)
    with serve(docs) as server:
        server.fault(Fault("status", status=503), path=SUMMARY)
        mp.fetch(RawZone(tmp_path / "raw", "mp"), options(server.url))
        assert all(r.headers.get("x-api-key") == API_KEY for r in server.requests if r.path == SUMMARY)
        bad = Reply.json({"detail": f"key {API_KEY} is blocked"}, status=403)
        server.fault(Fault("replace", reply=bad), path=SUMMARY)
        with pytest.raises(FetchError) as failure:
            mp.fetch(RawZone(tmp_path / "other", "mp"), options(server.url))
    normalize(tmp_path / "raw", tmp_path / "store", progress=False)
    assert API_KEY not in str(failure.value) and "***" in str(failure.value)
    assert API_KEY not in caplog.text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
            if path.suffix == ".gz":
                import gzip

                assert API_KEY.encode() not in gzip.decompress(path.read_bytes()), path


def test_missing_key_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    with pytest.raises(mp.MissingApiKey, match="MP_API_KEY"):
        mp.fetch(RawZone(tmp_path, "mp"), FetchOptions(endpoint="http://127.0.0.1:9", progress=False))


def test_fetch_and_normalize_through_the_cli(tmp_path, docs, monkeypatch):
    monkeypatch.setenv("MP_API_KEY", API_KEY)
    runner = CliRunner()
    raw, store = tmp_path / "raw", tmp_path / "store"
    with serve(docs) as server:
        args = ["fetch", "mp", "--raw", str(raw), "--endpoint", server.url, "--page-size", "100"]
        result = runner.invoke(app, [*args, "--rate", "1000", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"{N_GENERATED + 6:,} records" in result.output
    result = runner.invoke(
        app, ["normalize", "--raw", str(raw), "--out", str(store), "--workers", "1", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert verify_store(store) == []
    opened = open_store(store)
    assert opened.manifest["sources"] == {"mp": {"version": DB_VERSION, "records": N_GENERATED + 5}}
    rejected = pq.read_table(store / "rejected.parquet").to_pylist()
    assert [(r["source"], r["source_id"], r["reason_code"]) for r in rejected] == [
        ("mp", "mp-999003", "partial_occupancy")
    ]
    by_id = dict(zip(opened.records["source_id"].to_list(), opened.records["spacegroup_number"].to_list()))
    assert (by_id["mp-149"], by_id["mp-22862"], by_id["mp-2133"]) == (227, 225, 186)
    # a second normalisation reuses the staged records and finds the finished store
    again = runner.invoke(app, ["normalize", "--raw", str(raw), "--out", str(store), "--no-progress"])
    assert again.exit_code == 0, again.output


def test_a_repeated_material_is_kept_once_and_the_repeat_rejected(tmp_path, docs):
    repeated = [*docs[:3], dict(docs[0]), *docs[3:]]
    with serve(repeated) as server:
        mp.fetch(RawZone(tmp_path, "mp"), options(server.url))
    items = list(mp.records(RawZone(tmp_path, "mp")))
    assert len(items) == len(expected_ids(repeated))  # one item per stored entry: nothing dropped
    codes = [(i.source_id, i.code) for i in items if not isinstance(i, CrystalRecord)]
    assert codes == [("mp-149", "repeated_entry"), ("mp-999003", "partial_occupancy")]
