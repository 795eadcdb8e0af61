"""OQMD through OPTIMADE v1 against a loopback OQMD (tests/fake_oqmd.py), and its agreement with the
REST route on the same database."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from crystal_data.errors import RejectedInput
from crystal_data.record import CrystalRecord
from crystal_data.sources import oqmd
from crystal_data.sources.base import FetchOptions, RawRejection
from crystal_data.sources.landing import RawZone
from crystal_data.sources.optimade import (
    OQMD,
    PAGE_SIZE,
    SOURCE,
    response_fields,
    site_numbers,
    structure_record,
)
from crystal_data.sources.paging import FetchReport
from crystal_data.sources.politeness import Politeness
from tests.fake_oqmd import (
    MGAU,
    OPTIMADE_PATH,
    OPTIMADE_REJECTED,
    FakeOqmd,
    database,
    good_ids,
    optimade_resource,
    optimade_structures,
    reset,
)
from tests.upstream import Fault, Reply, Upstream

FAST = Politeness(
    requests_per_second=1000, concurrency=2, timeout_s=0.5, max_retries=4, backoff_s=0.01, backoff_max_s=0.05
)
SERIAL = FAST.with_(concurrency=1)
STRUCTURES = optimade_structures()
GOOD = good_ids(database()) | {"oqmd-fallback"}


def fetch(
    raw: Path, url: str, page_size: int | None = 50, politeness: Politeness = FAST, **options
) -> FetchReport:
    options = FetchOptions(
        endpoint=url, page_size=page_size, politeness=politeness, progress=False, **options
    )
    return SOURCE.fetch(RawZone(raw, SOURCE.name), options)


def read_back(raw: Path, name: str = SOURCE.name) -> tuple[dict[str, CrystalRecord], list[RawRejection]]:
    records: dict[str, CrystalRecord] = {}
    rejections = []
    source = SOURCE if name == SOURCE.name else oqmd.SOURCE
    for item in source.records(RawZone(raw, name)):
        if isinstance(item, RawRejection):
            rejections.append(item)
        else:
            assert item.source_id not in records, f"{item.source_id} yielded twice"
            records[item.source_id] = item
    return records, rejections


def assert_complete(raw: Path) -> None:
    records, rejections = read_back(raw)
    assert set(records) == GOOD and len(records) == 304
    assert {r.source_id: r.code for r in rejections} == OPTIMADE_REJECTED and len(rejections) == 4
    pages = list(RawZone(raw, SOURCE.name).pages())
    assert sum(p.count for p in pages) == len(STRUCTURES) == 308
    assert len({p.meta["ids_sha256"] for p in pages}) == len(pages)


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable[[dict], Upstream]]:
    with Upstream({}) as server:
        yield partial(reset, server)


@pytest.fixture(scope="module")
def pulled(serve, tmp_path_factory) -> tuple[Path, list, FetchReport]:
    raw = tmp_path_factory.mktemp("optimade-raw")
    server = serve(FakeOqmd(structures=STRUCTURES).routes())
    report = fetch(raw, server.url)
    return raw, list(server.requests), report


# ------------------------------------------------------------------------------------------ fetch
def test_full_fetch_gives_every_structure_once(pulled, caplog):
    raw, requests, report = pulled
    assert report.complete and report.records == 308 and report.pages == 7
    with caplog.at_level(logging.WARNING):
        assert_complete(raw)
    assert "1 structures have no _oqmd_entry_id" in caplog.text
    assert {r.path for r in requests} == {OPTIMADE_PATH}
    assert {r.query["response_fields"] for r in requests} == {",".join(response_fields(OQMD))}
    assert sorted(int(r.query["page_offset"]) for r in requests)[:7] == list(range(0, 350, 50))
    assert all(r.query["page_limit"] == "50" for r in requests)


def test_mgau_from_cartesian_positions(pulled):
    records, _ = read_back(pulled[0])
    mgau = records["10777"]
    assert mgau.uid == "oqmd:10777"  # the REST route's uid: normalize keeps one of the two
    np.testing.assert_array_equal(mgau.lattice, np.eye(3) * 3.282573)
    assert mgau.atomic_numbers.tolist() == [79, 12]
    np.testing.assert_allclose(mgau.frac_coords, [[0, 0, 0], [0.5, 0.5, 0.5]], atol=1e-12)
    assert mgau.labels == {
        "formation_energy_per_atom": -0.615378534583335,
        "band_gap": 0.0,
        "energy_above_hull": 0.001037924999999995,
    }
    assert mgau.source_duplicate_of is None and mgau.source_version == "optimade 1.1.0"
    assert mgau.origin == "oqmd-optimade/pages/p00000000.json.gz#0"
    assert records["oqmd-fallback"].atomic_numbers.tolist() == [79, 12]


def test_hexagonal_he_cell(pulled):
    he = read_back(pulled[0])[0]["8085"]
    a, b, c = np.linalg.norm(he.lattice, axis=1)
    gamma = math.degrees(math.acos(he.lattice[0] @ he.lattice[1] / (a * b)))
    assert (a, b, c) == (
        pytest.approx(2.386, abs=1e-3),
        pytest.approx(2.386, abs=1e-3),
        pytest.approx(3.893, abs=1e-3),
    )
    assert gamma == pytest.approx(120.0, abs=1e-2)
    np.testing.assert_allclose(he.frac_coords, [[0.333, 0.667, 0.25], [0.667, 0.333, 0.75]], atol=1e-12)


def test_agrees_with_the_rest_route(serve, pulled, tmp_path):
    server = serve(FakeOqmd(database(malformed=False)).routes())
    oqmd.SOURCE.fetch(
        RawZone(tmp_path, "oqmd"), FetchOptions(endpoint=server.url, politeness=FAST, progress=False)
    )
    rest, _ = read_back(tmp_path, "oqmd")
    via_optimade, _ = read_back(pulled[0])
    assert set(rest) == set(via_optimade) - {"oqmd-fallback"}
    for source_id, record in rest.items():
        other = via_optimade[source_id]
        assert other.uid == record.uid
        np.testing.assert_array_equal(other.lattice, record.lattice)
        np.testing.assert_array_equal(other.atomic_numbers, record.atomic_numbers)
        np.testing.assert_allclose(other.frac_coords, record.frac_coords, atol=1e-9)
        hull = record.labels["energy_above_hull"]
        assert other.labels == {**record.labels, "energy_above_hull": max(0.0, hull)}  # clamped on OPTIMADE


def test_stops_on_null_next_and_default_page_size(serve, tmp_path):
    server = serve(FakeOqmd(structures=STRUCTURES).routes())
    report = fetch(tmp_path, server.url, page_size=None, politeness=SERIAL)
    assert [r.query["page_limit"] for r in server.requests] == [str(PAGE_SIZE)] * 4
    last = list(RawZone(tmp_path, SOURCE.name).pages())[-1].json()
    assert last["links"]["next"] is None and last["meta"]["more_data_available"] is True
    assert report.complete and report.pages == 4


def test_without_next_links_an_empty_page_ends_the_fetch(serve, tmp_path):
    server = serve(FakeOqmd(structures=STRUCTURES, omit_next=True).routes())
    report = fetch(tmp_path, server.url, politeness=SERIAL)
    assert len(server.requests) == 8 and report.complete
    assert_complete(tmp_path)


def test_server_page_cap_loses_nothing(serve, tmp_path):
    server = serve(FakeOqmd(structures=STRUCTURES, max_limit=30).routes())
    report = fetch(tmp_path, server.url, politeness=SERIAL)
    assert len(server.requests) == 11 and report.pages == 11
    assert_complete(tmp_path)


def test_faults_are_retried_and_nothing_is_lost_or_doubled(serve, tmp_path, pulled):
    fake = FakeOqmd(structures=STRUCTURES)
    server = serve(fake.routes())

    def at(offset: int):
        return lambda request: request.query.get("page_offset") == str(offset)

    previous = fake.optimade(next(r for r in pulled[1] if r.query["page_offset"] == "100"))
    server.fault(Fault("status", status=429), OPTIMADE_PATH, at(0))
    server.fault(Fault("status", status=500), OPTIMADE_PATH, at(50))
    server.fault(Fault("drop"), OPTIMADE_PATH, at(100))
    server.fault(Fault("slow", seconds=0.8), OPTIMADE_PATH, at(150))
    server.fault(Fault("replace", reply=previous), OPTIMADE_PATH, at(150))
    server.fault(Fault("truncate_json"), OPTIMADE_PATH, at(200))
    server.fault(Fault("replace", reply=Reply.json({"errors": []})), OPTIMADE_PATH, at(250))
    report = fetch(tmp_path, server.url)
    assert server.pending_faults() == 0 and report.complete
    assert_complete(tmp_path)
    pages = [(p.offset, p.count, p.meta["ids_sha256"]) for p in RawZone(tmp_path, SOURCE.name).pages()]
    assert pages == [
        (p.offset, p.count, p.meta["ids_sha256"]) for p in RawZone(pulled[0], SOURCE.name).pages()
    ]


def test_limit_then_resume_and_filter(serve, tmp_path):
    server = serve(FakeOqmd(structures=STRUCTURES).routes())
    first = fetch(tmp_path / "all", server.url, politeness=SERIAL, limit=75)
    assert first.records == 75 and not first.complete
    assert fetch(tmp_path / "all", server.url).complete
    assert_complete(tmp_path / "all")
    server.requests.clear()
    fetch(tmp_path / "he", server.url, extra={"filter": 'elements HAS "He"'})
    assert {r.query["filter"] for r in server.requests} == {'elements HAS "He"'}
    assert set(read_back(tmp_path / "he")[0]) == {"8085", "4177"}


# ------------------------------------------------------------------------------------------ structures
def _attributes(**changes) -> dict:
    return {**optimade_resource(MGAU)["attributes"], **changes}


def test_species_without_species_list_are_symbols():
    attributes = _attributes()
    del attributes["species"]
    assert site_numbers(attributes) == [79, 12]


HALF_MG = [
    {"name": "Au", "chemical_symbols": ["Au"], "concentration": [1.0]},
    {"name": "Mg", "chemical_symbols": ["Mg"], "concentration": [0.5]},
]
MALFORMED = [
    (
        {"species_at_sites": ["Au", "Zz"]},
        "parse_error",
        "species_at_sites names ['Zz'] that species does not",
    ),
    ({"species": HALF_MG}, "partial_occupancy", "species 'Mg' has concentration 0.5"),
    ({"dimension_types": [1, 1, 0]}, "not_periodic", "dimension_types is [1, 1, 0], not periodic in 3D"),
    ({"nsites": 3}, "composition_mismatch", "nsites is 3 but 2 sites are listed"),
    (
        {"lattice_vectors": [[1, 0, 0], [2, 0, 0], [0, 0, 1]]},
        "degenerate_lattice",
        "lattice_vectors are singular",
    ),
    ({"lattice_vectors": [[1, 0, 0], [0, 1, 0], [0, 0, None]]}, "non_finite", "lattice_vectors holds null"),
    (
        {"lattice_vectors": [[1, 0, 0], [0, 1, 0], [0, 0, "a"]]},
        "parse_error",
        "lattice_vectors is not a list",
    ),
    ({"cartesian_site_positions": [[0, 0, 0]]}, "parse_error", "has shape (1, 3), not (2, 3)"),
    ({"_oqmd_delta_e": "-0.6"}, "parse_error", "_oqmd_delta_e is '-0.6', not a number"),
    ({"lattice_vectors": None}, "missing_field", "no lattice_vectors"),
]


@pytest.mark.parametrize(("changes", "code", "reason"), MALFORMED)
def test_malformed_structures_are_rejected(changes, code, reason):
    resource = {"id": "1", "type": "structures", "attributes": _attributes(**changes)}
    with pytest.raises(RejectedInput) as caught:
        structure_record(resource, "1", "here#0", "", record_source="oqmd", provider=OQMD)
    assert caught.value.code == code and reason in caught.value.reason


def test_an_unforeseen_shape_is_an_internal_error_not_a_crash(serve, tmp_path):
    odd = optimade_resource(MGAU)
    odd["attributes"]["species"] = [{"name": ["Au"], "chemical_symbols": ["Au"], "concentration": [1.0]}]
    server = serve(FakeOqmd(structures=[odd, optimade_resource(MGAU | {"entry_id": 2})]).routes())
    fetch(tmp_path, server.url)
    records, rejections = read_back(tmp_path)
    assert set(records) == {"2"}
    assert [(r.source_id, r.code) for r in rejections] == [("10777", "internal_error")]
    assert "TypeError" in rejections[0].reason
