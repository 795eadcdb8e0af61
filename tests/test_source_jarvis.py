"""JARVIS figshare sources and the safe downloader, against a loopback "figshare" with Range support."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from crystal_data.home import data_home
from crystal_data.record import CrystalRecord
from crystal_data.sources import jarvis
from crystal_data.sources.base import FetchOptions, RawRejection
from crystal_data.sources.download import (
    CorruptDownload,
    DownloadError,
    MissingDownload,
    check_zip_member,
    download_file,
    sidecar_path,
)
from crystal_data.sources.http import FetchError, HttpClient
from crystal_data.sources.landing import RawZone
from crystal_data.sources.politeness import Politeness
from tests.upstream import Fault, Reply, Request, Upstream

FAST = Politeness(
    requests_per_second=1000, concurrency=1, timeout_s=0.5, max_retries=4, backoff_s=0.01, backoff_max_s=0.05
)
DFT = "jarvis-dft-3d-2021"
MEGNET = "jarvis-megnet"
DFT_PATH = "/files/29204826"
MEGNET_PATH = "/files/26724977"
ETAG = '"figshare-v1"'

# A triclinic cell for the Cartesian entry: frac (0.5, 0.25, 0.125) @ L = (2.3125, 1.3125, 0.75), exactly.
SKEW = [[4.0, 0.0, 0.0], [1.0, 5.0, 0.0], [0.5, 0.5, 6.0]]
HEX = [[3.25, 0.0, 0.0], [-1.625, 2.814582562299426, 0.0], [0.0, 0.0, 5.21]]


def atoms(lattice, coords, elements, cartesian=False) -> dict:
    """A jarvis-tools ``Atoms.to_dict()`` (abc, angles and props as the dbdocs key list has them)."""
    lat = np.array(lattice)
    abc = np.linalg.norm(lat, axis=1).tolist()
    return {
        "lattice_mat": lattice,
        "coords": coords,
        "elements": elements,
        "abc": abc,
        "angles": [90.0, 90.0, 90.0],
        "cartesian": cartesian,
        "props": [""] * len(elements),
    }


def dft_entry(jid: str, structure: dict, **props) -> dict:
    entry = {key: "na" for key in jarvis.DFT_3D_LABELS}
    entry.update({"jid": jid, "atoms": structure, "formula": "X", "spg_number": 1, "magmom_outcar": "na"})
    entry.update(props)
    return entry


DFT_ENTRIES = [
    dft_entry(
        "JVASP-1002",
        atoms(
            [[3.35, 0.0, 1.93], [1.12, 3.16, 1.93], [0.0, 0.0, 3.87]],
            [[0, 0, 0], [0.25, 0.25, 0.25]],
            ["Si", "Si"],
        ),
        formation_energy_peratom=0.0,
        optb88vdw_bandgap=0.731,
        optb88vdw_total_energy=-4.015,
        ehull=0.0,
        mbj_bandgap=1.277,
        bulk_modulus_kv=87.3,
        **{"n-Seebeck": -262.5, "p-powerfact": 1474.1},
    ),
    dft_entry(  # hexagonal (wurtzite ZnO), fractional
        "JVASP-1195",
        atoms(
            HEX,
            [[1 / 3, 2 / 3, 0.0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.382], [2 / 3, 1 / 3, 0.882]],
            ["Zn", "Zn", "O", "O"],
        ),
        formation_energy_peratom=-1.633,
        optb88vdw_bandgap=float("nan"),  # json writes NaN, as pandas-made JARVIS files can
        slme=12.5,
    ),
    dft_entry(  # Cartesian coordinates
        "JVASP-5000",
        atoms(SKEW, [[0.0, 0.0, 0.0], [2.3125, 1.3125, 0.75]], ["Na", "Cl"], cartesian=True),
        formation_energy_peratom=-2.0,
        epsx=2.5,
    ),
    dft_entry(  # malformed: three elements, two coordinates
        "JVASP-6000",
        atoms(SKEW, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl", "Cl"]),
        formation_energy_peratom=-1.0,
    ),
    dft_entry("JVASP-7000", atoms(SKEW, [[0, 0, 0]], ["Xx"])),  # unknown element
    {"atoms": atoms(SKEW, [[0, 0, 0]], ["Na"]), "formation_energy_peratom": -1.0},  # no jid
]
for missing in ("epsy", "mepsz"):  # keys absent altogether are missing too
    del DFT_ENTRIES[0][missing]

MEGNET_ENTRIES = [
    {"id": "mp-149", "atoms": atoms(SKEW, [[0, 0, 0]], ["Si"]), "e_form": 0.0, "gap pbe": 0.61},
    {"id": "mp-1143", "atoms": atoms(HEX, [[0, 0, 0], [1 / 3, 2 / 3, 0.5]], ["Al", "O"]), "e_form": -3.4},
    {"id": "mp-149", "atoms": atoms(SKEW, [[0, 0, 0]], ["Si"]), "e_form": 0.1, "gap pbe": "na"},
]


def make_zip(member: str, entries: list) -> bytes:
    """The figshare zip: the JSON member, plus incompressible padding (so a transfer cut in half has
    bytes to resume from) under a hostile name that must never be touched."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, json.dumps(entries))
        archive.writestr("../../escape.bin", np.random.default_rng(0).bytes(256 * 1024), zipfile.ZIP_STORED)
    return buffer.getvalue()


DFT_ZIP = make_zip("jdft_3d-8-18-2021.json", DFT_ENTRIES)
MEGNET_ZIP = make_zip("megnet.json", MEGNET_ENTRIES)
DFT_SHA = hashlib.sha256(DFT_ZIP).hexdigest()


def figshare(body: bytes, honour_range: bool = True):
    """A figshare-like file route: ``Range: bytes=N-`` answered with 206 and Content-Range."""

    def route(request: Request) -> Reply:
        base = {"Content-Type": "application/zip", "ETag": ETAG}
        match = re.fullmatch(r"bytes=(\d+)-", request.headers.get("range", ""))
        if not (honour_range and match):
            return Reply(200, body, base)
        start = int(match.group(1))
        if start >= len(body):
            return Reply(416, b"", {"Content-Range": f"bytes */{len(body)}"})
        return Reply(
            206, body[start:], {**base, "Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
        )

    return route


def html_page(request: Request) -> Reply:
    return Reply(
        200, b"<html><body>figshare: file not available</body></html>", {"Content-Type": "text/html"}
    )


@pytest.fixture(scope="module")
def figshare_server():
    routes = {
        DFT_PATH: figshare(DFT_ZIP),
        MEGNET_PATH: figshare(MEGNET_ZIP),
        "/norange" + DFT_PATH: figshare(DFT_ZIP, honour_range=False),  # a mirror that ignores Range
        "/html" + DFT_PATH: html_page,  # a mirror that only answers with an error page
        # figshare's ndownloader answers with a redirect to a signed storage URL
        "/redirect" + DFT_PATH: lambda request: Reply(302, b"", {"Location": "/s3/signed-jdft.zip"}),
        "/s3/signed-jdft.zip": figshare(DFT_ZIP),
    }
    with Upstream(routes) as upstream:  # one server per module: shutting one down takes 0.5 s
        yield upstream


@pytest.fixture
def server(figshare_server):
    figshare_server.requests.clear()
    yield figshare_server
    assert figshare_server.pending_faults() == 0


def fetch(name: str, root: Path, url: str | None, politeness: Politeness = FAST):
    zone = RawZone(root, name)
    report = jarvis.SOURCES[name].fetch(
        zone, FetchOptions(endpoint=url, politeness=politeness, progress=False)
    )
    return zone, report


def header(request: Request, name: str) -> str | None:
    return request.headers.get(name.lower())


# ---------------------------------------------------------------------------------------------- parse
def test_dft_3d_records_in_json_order_with_exact_values(server, tmp_path):
    zone, report = fetch(DFT, tmp_path, server.url)
    assert (report.pages, report.records, report.new_pages, report.complete) == (1, 6, 1, True)
    items = list(jarvis.SOURCES[DFT].records(zone))
    origin = "jarvis-dft-3d-2021/files/jdft_3d-8-18-2021.json.zip#"  # relative to the landing folder
    ids = ["JVASP-1002", "JVASP-1195", "JVASP-5000", "JVASP-6000", "JVASP-7000", f"<no jid at {origin}5>"]
    assert [i.source_id for i in items] == ids
    si, zno, nacl, bad, unknown, anonymous = items
    assert isinstance(si, CrystalRecord) and si.uid == "jarvis:JVASP-1002"
    assert si.source_version == "dft_3d_2021 (jdft_3d-8-18-2021.json)" and si.origin == origin + "0"
    assert si.lattice.tolist() == [[3.35, 0.0, 1.93], [1.12, 3.16, 1.93], [0.0, 0.0, 3.87]]
    assert si.atomic_numbers.tolist() == [14, 14]
    assert si.frac_coords.tolist() == [[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]]
    assert list(si.labels) == list(jarvis.DFT_3D_LABELS)  # all 19, in CrysGNN's order
    assert si.labels["optb88vdw_bandgap"] == 0.731 and si.labels["n-Seebeck"] == -262.5
    assert si.labels["p-powerfact"] == 1474.1 and si.labels["bulk_modulus_kv"] == 87.3
    assert si.labels["slme"] is None and si.labels["spillage"] is None  # "na"
    assert si.labels["epsy"] is None and si.labels["mepsz"] is None  # key absent
    assert zno.lattice.tolist() == HEX and zno.atomic_numbers.tolist() == [30, 30, 8, 8]
    assert zno.frac_coords[2].tolist() == [1 / 3, 2 / 3, 0.382]
    assert zno.labels["optb88vdw_bandgap"] is None  # NaN
    assert zno.labels["slme"] == 12.5 and zno.labels["formation_energy_peratom"] == -1.633
    assert nacl.atomic_numbers.tolist() == [11, 17] and nacl.lattice.tolist() == SKEW
    np.testing.assert_allclose(nacl.frac_coords, [[0, 0, 0], [0.5, 0.25, 0.125]], rtol=0, atol=1e-14)
    assert isinstance(bad, RawRejection) and (bad.code, bad.origin) == ("malformed_structure", origin + "3")
    assert bad.reason == "3 elements but 2 coordinates"
    assert isinstance(unknown, RawRejection) and unknown.code == "unknown_element"
    assert isinstance(anonymous, RawRejection) and anonymous.code == "missing_id"
    assert not list(tmp_path.parent.rglob("escape.bin"))  # the hostile member name was never used


def test_megnet_records_ids_and_labels(server, tmp_path):
    zone, report = fetch(MEGNET, tmp_path, server.url)
    assert report.records == 3
    items = list(jarvis.SOURCES[MEGNET].records(zone))
    assert [i.source_id for i in items] == ["mp-149", "mp-1143", "mp-149"]
    assert items[0].uid == "megnet:mp-149" and items[0].labels == {"e_form": 0.0, "gap pbe": 0.61}
    assert items[1].labels == {"e_form": -3.4, "gap pbe": None}
    assert items[1].source_version == "megnet (megnet.json)"
    assert items[2].labels == {"e_form": 0.1, "gap pbe": None}  # a repeated id is normalize's to reject
    assert jarvis.SOURCES[MEGNET].label_units == {"e_form": "eV/atom", "gap pbe": "eV"}
    meta = zone.file_meta("megnet.json.zip")
    assert (meta["entries"], meta["first_id"], meta["last_id"]) == (3, "mp-149", "mp-149")


# ---------------------------------------------------------------------------------------- download
def test_dropped_download_resumes_with_range(server, tmp_path):
    server.fault(Fault("truncate"), path=DFT_PATH)
    zone, report = fetch(DFT, tmp_path, server.url)
    first, second = server.requests
    assert header(first, "Range") is None
    resumed = int(re.fullmatch(r"bytes=(\d+)-", header(second, "Range")).group(1))
    assert 0 < resumed < len(DFT_ZIP) and header(second, "If-Range") == ETAG
    meta = zone.file_meta("jdft_3d-8-18-2021.json.zip")
    assert (meta["sha256"], meta["bytes"], meta["resumed_from"]) == (DFT_SHA, len(DFT_ZIP), resumed)
    assert (
        meta["sha256_source"] == "trust-on-first-download"
        and "first complete download" in meta["sha256_note"]
    )
    assert zone.file_path("jdft_3d-8-18-2021.json.zip").read_bytes() == DFT_ZIP
    assert not list(zone.file_path("x").parent.glob("*.part*"))
    assert report.records == 6


def test_resume_through_a_redirect_to_storage(server, tmp_path):
    server.fault(Fault("truncate"), path="/s3/signed-jdft.zip")
    zone, _ = fetch(DFT, tmp_path, server.url + "/redirect")
    assert [r.path for r in server.requests] == ["/redirect" + DFT_PATH, "/s3/signed-jdft.zip"] * 2
    meta = zone.file_meta("jdft_3d-8-18-2021.json.zip")
    assert header(server.requests[1], "Range") is None and meta["resumed_from"] > 0
    assert header(server.requests[3], "Range") == f"bytes={meta['resumed_from']}-"  # kept across the redirect
    assert meta["url"] == server.url + "/redirect" + DFT_PATH
    assert meta["sha256"] == DFT_SHA


def test_partial_file_from_a_killed_run_is_resumed_by_the_next_run(server, tmp_path):
    server.fault(Fault("truncate"), path=DFT_PATH)
    with pytest.raises(FetchError, match="gave up after 1 attempts"):
        fetch(DFT, tmp_path, server.url, politeness=FAST.with_(max_retries=0))
    part = RawZone(tmp_path, DFT).file_path("jdft_3d-8-18-2021.json.zip.part")
    kept = part.stat().st_size
    assert 0 < kept < len(DFT_ZIP)
    zone, _ = fetch(DFT, tmp_path, server.url)
    assert header(server.requests[-1], "Range") == f"bytes={kept}-"
    assert zone.file_meta("jdft_3d-8-18-2021.json.zip")["sha256"] == DFT_SHA


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.fault(Fault("truncate"), path="/norange" + DFT_PATH)
    zone, _ = fetch(DFT, tmp_path, server.url + "/norange")
    assert len(server.requests) == 2 and header(server.requests[1], "Range").startswith("bytes=")
    meta = zone.file_meta("jdft_3d-8-18-2021.json.zip")
    assert (meta["sha256"], meta["resumed_from"]) == (DFT_SHA, 0)


def test_retries_5xx_and_429(server, tmp_path):
    server.fault(Fault("status", status=503), path=DFT_PATH)
    server.fault(Fault("status", status=429, headers={"Retry-After": "0"}), path=DFT_PATH)
    zone, report = fetch(DFT, tmp_path, server.url)
    assert len(server.requests) == 3 and report.records == 6


def test_corrupted_cache_is_refused_by_records_and_refetched(server, tmp_path):
    zone, _ = fetch(DFT, tmp_path, server.url)
    path = zone.file_path("jdft_3d-8-18-2021.json.zip")
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(
        CorruptDownload,
        match=r"does not match .* run `crystal-data fetch jarvis-dft-3d-2021 --raw .*` to download it",
    ):
        next(iter(jarvis.SOURCES[DFT].records(zone)))
    zone, report = fetch(DFT, tmp_path, server.url)
    assert len(server.requests) == 2 and report.new_pages == 1
    assert path.read_bytes() == DFT_ZIP and len(list(jarvis.SOURCES[DFT].records(zone))) == 6


def test_records_before_fetch_says_to_fetch(tmp_path):
    zone = RawZone(tmp_path, DFT)
    with pytest.raises(MissingDownload, match="not downloaded.*crystal-data fetch jarvis-dft-3d-2021 --raw"):
        list(jarvis.SOURCES[DFT].records(zone))


def test_html_error_page_is_rejected_then_retried(server, tmp_path):
    page = Reply(
        200, b"<!DOCTYPE html><html><body>Too many requests</body></html>", {"Content-Type": "text/html"}
    )
    server.fault(Fault("replace", reply=page), path=DFT_PATH)
    zone, _ = fetch(DFT, tmp_path, server.url)
    assert len(server.requests) == 2
    assert zone.file_meta("jdft_3d-8-18-2021.json.zip")["sha256"] == DFT_SHA


def test_html_page_for_good_is_never_cached(server, tmp_path):
    with pytest.raises(FetchError, match="HTML/XML page .* not a zip archive"):
        fetch(DFT, tmp_path, server.url + "/html")
    assert len(server.requests) == FAST.max_retries + 1
    assert list(RawZone(tmp_path, DFT).file_path("x").parent.iterdir()) == []


def test_size_limit_refuses_before_reading(server, tmp_path):
    dest = tmp_path / "files" / "big.zip"
    with (
        HttpClient(FAST) as http,
        pytest.raises(DownloadError, match="bytes announced, more than the limit of 1000"),
    ):
        download_file(
            http, server.url + DFT_PATH, dest, expected_sha256=None, max_bytes=1000, tmp_dir=tmp_path
        )
    assert len(server.requests) == 1 and list(dest.parent.iterdir()) == []


def test_pinned_sha256_mismatch_is_an_error_and_match_is_recorded(server, tmp_path):
    dest = tmp_path / "files" / "d.zip"
    with HttpClient(FAST) as http:
        with pytest.raises(DownloadError, match="is not the pinned 0000"):
            download_file(
                http,
                server.url + DFT_PATH,
                dest,
                expected_sha256="0" * 64,
                max_bytes=1 << 20,
                tmp_dir=tmp_path,
            )
        assert not dest.exists() and not sidecar_path(dest).exists() and len(server.requests) == 1
        result = download_file(
            http, server.url + DFT_PATH, dest, expected_sha256=DFT_SHA, max_bytes=1 << 20, tmp_dir=tmp_path
        )
    assert (result.sha256, result.sha256_source, result.cached) == (DFT_SHA, "pinned", False)
    assert "sha256_note" not in json.loads(sidecar_path(dest).read_text())


def test_pinned_registry_checksum_is_used_by_fetch(server, tmp_path, monkeypatch):
    monkeypatch.setitem(jarvis.REGISTRY, DFT, replace(jarvis.REGISTRY[DFT], sha256=DFT_SHA))
    zone, _ = fetch(DFT, tmp_path, server.url)
    assert zone.file_meta("jdft_3d-8-18-2021.json.zip")["sha256_source"] == "pinned"
    monkeypatch.setitem(jarvis.REGISTRY, DFT, replace(jarvis.REGISTRY[DFT], sha256="f" * 64))
    with pytest.raises(CorruptDownload, match="is not the pinned ffff"):
        list(jarvis.SOURCES[DFT].records(zone))


def test_zip_member_size_cap(tmp_path):
    path = tmp_path / "a.zip"
    path.write_bytes(DFT_ZIP)
    check_zip_member("jdft_3d-8-18-2021.json", 10**6)(path)
    with pytest.raises(ValueError, match="decompressed, over 100"):
        check_zip_member("jdft_3d-8-18-2021.json", 100)(path)
    with pytest.raises(ValueError, match="no member 'megnet.json'"):
        check_zip_member("megnet.json", 10**6)(path)


def test_good_cache_makes_no_request(server, tmp_path):
    fetch(DFT, tmp_path, server.url)
    zone, report = fetch(DFT, tmp_path, server.url)
    assert len(server.requests) == 1 and (report.new_pages, report.records) == (0, 6)


# ---------------------------------------------------------------------------------------- endpoint
def test_endpoint_env_replaces_scheme_and_host_and_keeps_path(server, tmp_path, monkeypatch):
    monkeypatch.setenv("JARVIS_ENDPOINT", server.url + "/")
    fetch(DFT, tmp_path, None)
    assert [r.path for r in server.requests] == [DFT_PATH]
    monkeypatch.delenv("JARVIS_ENDPOINT")
    source = jarvis.SOURCES[MEGNET]
    assert source.endpoint(FetchOptions()) == "https://ndownloader.figshare.com"
    assert (
        jarvis.REGISTRY[MEGNET].url(source.endpoint(FetchOptions()))
        == "https://ndownloader.figshare.com/files/26724977"
    )
    assert jarvis.figshare_file("dft_3d_2021") is jarvis.REGISTRY[DFT]


def test_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("CRYSTAL_DATA_HOME", str(tmp_path / "cd"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_home() == (tmp_path / "cd").resolve()
    monkeypatch.delenv("CRYSTAL_DATA_HOME")
    assert data_home() == (tmp_path / "xdg" / "crystal-data").resolve()
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")
    assert data_home() == (Path.home() / ".cache" / "crystal-data").resolve()
    monkeypatch.setenv("CRYSTAL_DATA_HOME", os.path.join(str(tmp_path), "lib", "site-packages", "x"))
    with pytest.raises(ValueError, match="inside an installed package"):
        data_home()
