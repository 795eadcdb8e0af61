"""The OQMD REST client against a loopback OQMD speaking the real envelope (tests/fake_oqmd.py)."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from crystal_data.errors import RejectedInput
from crystal_data.record import CrystalRecord
from crystal_data.sources.base import FetchOptions, RawRejection
from crystal_data.sources.http import FetchError
from crystal_data.sources.landing import FetchConflict, RawZone
from crystal_data.sources.oqmd import FIELDS, SOURCE, parse_site
from crystal_data.sources.paging import FetchReport
from crystal_data.sources.politeness import Politeness
from tests.fake_oqmd import MALFORMED_IDS, MGAU, REST_PATH, FakeOqmd, database, good_ids, reset
from tests.upstream import Fault, Reply, Request, Upstream

FAST = Politeness(
    requests_per_second=1000, concurrency=2, timeout_s=0.5, max_retries=4, backoff_s=0.01, backoff_max_s=0.05
)
SERIAL = FAST.with_(concurrency=1)
ENTRIES = database()
GOOD = good_ids(ENTRIES)
REPO = Path(__file__).resolve().parents[1]


def fetch(raw: Path, url: str, page_size: int = 50, politeness: Politeness = FAST, **options) -> FetchReport:
    zone = RawZone(raw, "oqmd")
    return SOURCE.fetch(
        zone,
        FetchOptions(endpoint=url, page_size=page_size, politeness=politeness, progress=False, **options),
    )


def read_back(raw: Path) -> tuple[dict[str, CrystalRecord], list[RawRejection]]:
    """Records by id (failing on a repeated id) and the rejections, in order."""
    records: dict[str, CrystalRecord] = {}
    rejections = []
    for item in SOURCE.records(RawZone(raw, "oqmd")):
        if isinstance(item, RawRejection):
            rejections.append(item)
        else:
            assert item.source_id not in records, f"{item.source_id} yielded twice"
            records[item.source_id] = item
    return records, rejections


def page_requests(server: Upstream) -> list[Request]:
    return [r for r in server.requests if r.path == REST_PATH]


def stored_pages(raw: Path) -> list[tuple[int, int, str]]:
    return [(p.offset, p.count, p.meta["ids_sha256"]) for p in RawZone(raw, "oqmd").pages()]


def assert_complete(raw: Path, pages: list[tuple[int, int, str]] | None = None) -> None:
    """Exactly the good entries as records, every malformed one as its rejection, no page twice."""
    records, rejections = read_back(raw)
    assert set(records) == GOOD and len(records) == len(GOOD) == 303
    codes = {r.source_id: r.code for r in rejections}
    assert len(rejections) == len(MALFORMED_IDS) + 1
    assert {k: v for k, v in codes.items() if k in MALFORMED_IDS} == MALFORMED_IDS
    missing = [r for r in rejections if r.code == "missing_id"]
    assert len(missing) == 1 and missing[0].source_id == missing[0].origin
    stored = stored_pages(raw)
    offsets = [offset for offset, _, _ in stored]
    assert offsets == sorted(set(offsets)) and sum(count for _, count, _ in stored) == len(ENTRIES)
    assert len({digest for _, _, digest in stored}) == len(stored)
    if pages is not None:
        assert stored == pages
    assert RawZone(raw, "oqmd").completion() is not None


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable[[dict], Upstream]]:
    """``serve(routes)``: the module's one loopback server with these routes and an empty request log."""
    with Upstream({}) as server:
        yield partial(reset, server)


@pytest.fixture(scope="module")
def pulled(serve, tmp_path_factory) -> tuple[Path, list[Request], FetchReport]:
    """One uninterrupted fetch (page size 50, two requests in flight)."""
    raw = tmp_path_factory.mktemp("oqmd-raw")
    server = serve(FakeOqmd(ENTRIES).routes())
    report = fetch(raw, server.url)
    return raw, list(server.requests), report


# ------------------------------------------------------------------------------------------ parsing
def test_parse_site_reads_fractional_coordinates():
    assert parse_site("Au @ 0 0 0") == (79, [0.0, 0.0, 0.0])
    assert parse_site("He @ 0.333 0.667 0.25") == (2, [0.333, 0.667, 0.25])
    assert parse_site("  Mg@0.5 0.5 0.5 ") == (12, [0.5, 0.5, 0.5])


@pytest.mark.parametrize(
    ("site", "code"),
    [
        ("Au 0 0 0", "parse_error"),
        ("Au @ 0 0", "parse_error"),
        ("Au @ 0 0 0 1", "parse_error"),
        ("Au @ a b c", "parse_error"),
        (" @ 0 0 0", "parse_error"),
        (["Au", 0, 0, 0], "parse_error"),
        ("Xx @ 0 0 0", "unknown_element"),
        ("X @ 0 0 0", "unknown_element"),
    ],
)
def test_parse_site_rejects_malformed_strings(site, code):
    with pytest.raises(RejectedInput) as caught:
        parse_site(site)
    assert caught.value.code == code and repr(site)[:6] in caught.value.reason


# ------------------------------------------------------------------------------------------ records
def test_full_fetch_gives_every_entry_once(pulled):
    raw, requests, report = pulled
    assert report.complete and report.records == len(ENTRIES) == 310 and report.pages == 7
    assert_complete(raw)


def test_requests_ask_only_our_fields_and_page_by_offset(pulled):
    _, requests, _ = pulled
    assert {r.query["fields"] for r in requests} == {",".join(FIELDS)}
    assert sorted(int(r.query["offset"]) for r in requests)[:7] == list(range(0, 350, 50))
    assert all(r.query["limit"] == "50" and "filter" not in r.query for r in requests)


def test_mgau_record(pulled):
    records, _ = read_back(pulled[0])
    mgau = records["10777"]
    assert mgau.uid == "oqmd:10777" and mgau.source == "oqmd"
    np.testing.assert_array_equal(mgau.lattice, np.eye(3) * 3.282573)
    assert mgau.atomic_numbers.tolist() == [79, 12]
    np.testing.assert_array_equal(mgau.frac_coords, [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert mgau.labels == {
        "formation_energy_per_atom": -0.615378534583335,
        "band_gap": 0.0,
        "energy_above_hull": 0.001037924999999995,
    }
    assert mgau.source_duplicate_of == "10777"  # kept as given, even pointing at itself
    assert mgau.source_version == "oqmd 1.6, api 1.0"
    assert mgau.origin == "oqmd/pages/p00000000.json.gz#0"


def test_hexagonal_he_cell(pulled):
    records, _ = read_back(pulled[0])
    he = records["8085"]
    a, b, c = np.linalg.norm(he.lattice, axis=1)
    gamma = math.degrees(math.acos(he.lattice[0] @ he.lattice[1] / (a * b)))
    assert a == pytest.approx(2.386, abs=1e-3) and b == pytest.approx(2.386, abs=1e-3)
    assert c == pytest.approx(3.893, abs=1e-3)
    assert gamma == pytest.approx(120.0, abs=1e-2)
    np.testing.assert_array_equal(he.frac_coords, [[0.333, 0.667, 0.25], [0.667, 0.333, 0.75]])
    assert he.atomic_numbers.tolist() == [2, 2]
    fcc = records["4177"]
    assert fcc.nsites == 1 and abs(np.linalg.det(fcc.lattice)) == pytest.approx(2 * 1.704771**3, rel=1e-9)


def test_duplicate_pointer_kept_and_negative_stability_clamped(pulled):
    records, _ = read_back(pulled[0])
    pointing = [e for e in ENTRIES if "entry_id" in e and e["duplicate_entry_id"] != e["entry_id"]]
    assert len(pointing) == 30
    for entry in pointing:
        assert records[str(entry["entry_id"])].source_duplicate_of == str(entry["duplicate_entry_id"])
    on_hull = [e for e in ENTRIES if str(e.get("entry_id")) in GOOD and e["stability"] < 0]
    assert on_hull and all(records[str(e["entry_id"])].labels["energy_above_hull"] == 0.0 for e in on_hull)
    above = [e for e in ENTRIES if str(e.get("entry_id")) in GOOD and e["stability"] > 0]
    assert above and all(
        records[str(e["entry_id"])].labels["energy_above_hull"] == e["stability"] for e in above
    )


def test_rejections_name_the_entry_and_the_reason(pulled):
    _, rejections = read_back(pulled[0])
    by_id = {r.source_id: r for r in rejections}
    assert by_id["900001"].reason == "entry 900001: site 'Au 0 0 0' is not 'El @ a b c'"
    assert by_id["900002"].reason == "entry 900002: site 'Xx @ 0.5 0.5 0.5': unknown element 'Xx'"
    assert by_id["900003"].reason == "entry 900003: no unit_cell"
    assert by_id["900004"].reason == "entry 900004: delta_e is 'n/a', not a number"
    assert by_id["900005"].reason == "entry 900005: natoms is 3 but 2 sites are listed"
    assert by_id["900006"].reason == "entry 900006: unit_cell has shape (2, 3), not (3, 3)"
    assert by_id["900001"].origin == "oqmd/pages/p00000000.json.gz#40"


# ------------------------------------------------------------------------------------------ stop rule
@pytest.mark.parametrize("total", [300, 287])
def test_stops_on_null_next_despite_more_data_available(serve, tmp_path, total):
    entries = database(total - 3, malformed=False)
    server = serve(FakeOqmd(entries).routes())
    report = fetch(tmp_path, server.url, politeness=SERIAL)
    pages = math.ceil(total / 50)
    assert len(page_requests(server)) == pages  # nothing asked after links.next was null
    last = list(RawZone(tmp_path, "oqmd").pages())[-1]
    body = last.json()
    assert body["links"]["next"] is None and body["meta"]["more_data_available"] is True
    assert report.complete and report.pages == pages and report.records == total
    assert last.meta["last"] is True


def test_without_next_links_an_empty_page_ends_the_fetch(serve, tmp_path):
    server = serve(FakeOqmd(ENTRIES, omit_next=True).routes())
    report = fetch(tmp_path, server.url, politeness=SERIAL)
    assert len(page_requests(server)) == 8
    assert report.complete and report.pages == 8
    assert_complete(tmp_path)


@pytest.mark.parametrize("politeness", [SERIAL, FAST], ids=["serial", "two-in-flight"])
def test_server_page_cap_loses_nothing(serve, tmp_path, politeness):
    server = serve(FakeOqmd(ENTRIES, max_limit=37).routes())
    report = fetch(tmp_path, server.url, politeness=politeness)
    assert {r.query["limit"] for r in page_requests(server)} == {"50", "37"}  # learns the cap once
    assert report.complete and report.pages == math.ceil(310 / 37)
    assert len(page_requests(server)) <= report.pages + 2
    assert [count for _, count, _ in stored_pages(tmp_path)] == [37] * 8 + [14]
    assert_complete(tmp_path)


# ------------------------------------------------------------------------------------------ faults
def test_faults_are_retried_and_nothing_is_lost_or_doubled(serve, tmp_path, pulled):
    fake = FakeOqmd(ENTRIES)

    def at(offset: int):
        return lambda request: request.query.get("offset") == str(offset)

    server = serve(fake.routes())
    server.fault(Fault("status", status=500), REST_PATH, at(0))
    server.fault(Fault("status", status=503), REST_PATH, at(0))
    server.fault(Fault("drop"), REST_PATH, at(50))
    server.fault(Fault("slow", seconds=0.8), REST_PATH, at(100))
    server.fault(Fault("truncate"), REST_PATH, at(150))
    server.fault(Fault("truncate_json"), REST_PATH, at(200))
    repeat = fake.rest_page(200, 50, ",".join(FIELDS))  # the previous page's content, once
    server.fault(Fault("replace", reply=repeat), REST_PATH, at(250))
    server.fault(Fault("replace", reply=Reply.json({"detail": "busy"})), REST_PATH, at(300))
    report = fetch(tmp_path, server.url)
    assert server.pending_faults() == 0
    assert report.complete and report.records == 310
    assert_complete(tmp_path, pages=stored_pages(pulled[0]))


def test_429_waits_for_retry_after(serve, tmp_path):
    patient = FAST.with_(backoff_max_s=5.0)  # Retry-After is capped at backoff_max_s
    server = serve(FakeOqmd(ENTRIES).routes())
    server.fault(Fault("status", status=429, headers={"Retry-After": "1"}), REST_PATH)
    start = time.monotonic()
    report = fetch(tmp_path, server.url, politeness=patient, limit=100)
    elapsed = time.monotonic() - start
    assert 1.0 <= elapsed < 3.0
    assert report.records == 100 and not report.complete


def test_a_hard_error_fails_loudly(serve, tmp_path):
    server = serve(FakeOqmd(ENTRIES).routes())
    with pytest.raises(FetchError, match="HTTP 400"):
        fetch(tmp_path, server.url, extra={"filter": "volume>3"})
    for _ in range(FAST.max_retries + 1):
        server.fault(Fault("status", status=502), REST_PATH)
    with pytest.raises(FetchError, match="gave up after 5 attempts"):
        fetch(tmp_path / "b", server.url, politeness=SERIAL)


# ------------------------------------------------------------------------------------------ resume
def test_limit_then_resume(serve, tmp_path, pulled):
    server = serve(FakeOqmd(ENTRIES).routes())
    first = fetch(tmp_path, server.url, politeness=SERIAL, limit=120)
    assert [r.query["limit"] for r in page_requests(server)] == ["50", "50", "20"]
    assert first.records == 120 and not first.complete
    again = fetch(tmp_path, server.url, politeness=SERIAL, limit=120)
    assert again.new_pages == 0 and len(page_requests(server)) == 3
    rest = fetch(tmp_path, server.url)
    assert rest.complete and rest.records == 310 and rest.pages == 7
    assert [offset for offset, _, _ in stored_pages(tmp_path)] == [0, 50, 100, 120, 170, 220, 270]
    assert_complete(tmp_path)


FETCH_SCRIPT = """
import sys
from crystal_data.sources.base import FetchOptions
from crystal_data.sources.landing import RawZone
from crystal_data.sources.oqmd import SOURCE
from crystal_data.sources.politeness import Politeness

politeness = Politeness(requests_per_second=1000, concurrency=2, timeout_s=5, max_retries=2, backoff_s=0.01)
options = FetchOptions(endpoint=sys.argv[2], page_size=20, politeness=politeness, progress=False)
SOURCE.fetch(RawZone(sys.argv[1], "oqmd"), options)
"""


def test_sigkill_mid_fetch_then_resume_equals_uninterrupted(serve, tmp_path):
    served_before_kill = 6
    fake = FakeOqmd(ENTRIES)
    process: list[subprocess.Popen] = []
    served = 0

    def route(request: Request) -> Reply:
        nonlocal served
        served += 1
        if served == served_before_kill + 1 and process:  # the client has had 6 answers: kill it now
            process[0].send_signal(signal.SIGKILL)
            process[0].wait()
        return fake.rest(request)

    killed = tmp_path / "killed"
    server = serve({REST_PATH: route})
    process.append(subprocess.Popen([sys.executable, "-c", FETCH_SCRIPT, str(killed), server.url], cwd=REPO))
    assert process[0].wait(timeout=30) == -signal.SIGKILL
    torn = stored_pages(killed)
    assert 1 <= len(torn) < 16 and RawZone(killed, "oqmd").completion() is None
    before = len(server.requests)
    report = fetch(killed, server.url, page_size=20)
    resumed = server.requests[before:]
    # two requests in flight: the server may log the second first
    assert min(int(r.query["offset"]) for r in resumed) == sum(count for _, count, _ in torn)
    clean = tmp_path / "clean"
    server = serve(FakeOqmd(ENTRIES).routes())
    fetch(clean, server.url, page_size=20)
    assert report.complete and report.new_pages == 16 - len(torn)
    assert stored_pages(killed) == stored_pages(clean)
    assert_complete(killed)
    kept, _ = read_back(killed)
    reference, _ = read_back(clean)
    for source_id, record in reference.items():
        np.testing.assert_array_equal(kept[source_id].frac_coords, record.frac_coords)
        np.testing.assert_array_equal(kept[source_id].lattice, record.lattice)


def test_completed_fetch_makes_no_request_and_records_need_no_network(tmp_path):
    with Upstream(FakeOqmd(ENTRIES).routes()) as server:
        fetch(tmp_path, server.url)
        before = len(server.requests)
        report = fetch(tmp_path, server.url)
        assert len(server.requests) == before and report.new_pages == 0 and report.complete
    assert_complete(tmp_path)  # the server is gone


# ------------------------------------------------------------------------------------------ options
def test_filter_is_passed_and_recorded(serve, tmp_path):
    server = serve(FakeOqmd(ENTRIES).routes())
    report = fetch(tmp_path, server.url, extra={"filter": "element=He"})
    assert {r.query["filter"] for r in page_requests(server)} == {"element=He"}
    with pytest.raises(FetchConflict):  # a landing folder holds one query
        fetch(tmp_path, server.url, extra={"filter": "element=Au"})
    records, rejections = read_back(tmp_path)
    assert set(records) == {"8085", "4177"} and not rejections and report.complete
    spec = RawZone(tmp_path, "oqmd").spec()
    assert spec["params"] == {"fields": ",".join(FIELDS), "filter": "element=He"}
    with pytest.raises(ValueError, match="unknown option"):
        fetch(tmp_path / "b", "http://127.0.0.1:9", extra={"filtr": "element=Au"})


def test_endpoint_from_environment_keeps_the_path(serve, tmp_path, monkeypatch):
    server = serve(FakeOqmd(ENTRIES[:5]).routes())
    monkeypatch.setenv("OQMD_ENDPOINT", server.url + "/")
    fetch(tmp_path / "env", None)
    fetch(tmp_path / "full", server.url + REST_PATH)
    assert {r.path for r in server.requests} == {REST_PATH}
    assert RawZone(tmp_path / "env", "oqmd").spec()["url"] == server.url + REST_PATH
    assert SOURCE.default_endpoint == "https://oqmd.org" and SOURCE.endpoint_env == "OQMD_ENDPOINT"


def test_overlapping_pages_give_each_entry_once(serve, tmp_path):
    """An entry inserted upstream between two pages shifts the next page by one: its first entry
    repeats the previous page's last. The copy is a ``repeated_entry`` rejection."""
    entries = database(97, malformed=False)  # 100 entries
    fake = FakeOqmd(entries)

    def route(request: Request) -> Reply:
        reply = fake.rest(request)
        if request.query.get("offset") == "0":
            fake.entries = [{**MGAU, "entry_id": 1, "duplicate_entry_id": 1}, *entries]
        return reply

    server = serve({REST_PATH: route})
    fetch(tmp_path, server.url, politeness=SERIAL)
    records, rejections = read_back(tmp_path)
    assert set(records) == {str(e["entry_id"]) for e in entries}
    repeated = [(r.source_id, r.code, r.origin) for r in rejections]
    assert repeated == [(str(entries[49]["entry_id"]), "repeated_entry", "oqmd/pages/p00000001.json.gz#0")]


def test_stored_pages_are_the_bytes_received(pulled):
    raw, _, _ = pulled
    first = next(RawZone(raw, "oqmd").pages())
    body = json.loads(first.body())
    assert list(body) == ["links", "resource", "data", "meta", "response_message"]
    assert list(body["data"][0]) == [f for f in MGAU if f in FIELDS]
    assert first.meta["request"]["params"]["offset"] == "0" and first.meta["total_available"] == 310
