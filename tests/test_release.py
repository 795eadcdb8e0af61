"""Releases: publish the sample store (deduplicated, with a stored split), verify it, read its card and
changelog, refuse overwrites and tampering, and open it by URL from a loopback server, then offline."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

import crystal_data
from crystal_data.build import build_from_cif_folder
from crystal_data.cli import app
from crystal_data.datasets.cache import OFFLINE_ENV, DatasetNotAvailable
from crystal_data.datasets.registry import UNTAGGED_800K_ENV
from crystal_data.dedup import deduplicate_store
from crystal_data.home import HOME_ENV
from crystal_data.release import ReleaseError, ReleaseExists, publish_release
from crystal_data.release.citations import citations_of, databases_of
from crystal_data.sample import sample_dir
from crystal_data.store import verify_store
from tests.conftest import sample_settings
from tests.upstream import Reply, Upstream

TARGET = "formation_energy_per_atom"
FIRST, SECOND = "2026.11.0", "2026.12.0"
runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A private data home for the module (locks, the release cache)."""
    path = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(HOME_ENV, str(path))
        patch.delenv(OFFLINE_ENV, raising=False)
        yield path


@pytest.fixture(scope="module")
def first(sample_store, tmp_path_factory, home) -> tuple[Path, Path]:
    """(a deduplicated copy of the sample store with the paper split of its label, the releases folder
    holding its first release)."""
    store = tmp_path_factory.mktemp("first") / "store"
    shutil.copytree(sample_store, store)
    deduplicate_store(store, workers=1, progress=False)
    crystal_data.load(store, "train", TARGET)  # stores the alignn split in the store
    dest = tmp_path_factory.mktemp("releases")
    publish_release(store, FIRST, dest, progress=False)
    return store, dest


def sample_ids() -> list[tuple[str, str]]:
    with open(sample_dir() / "id_prop.csv", newline="") as handle:
        return [(row[0], row[1]) for row in csv.reader(handle)]


@pytest.fixture(scope="module")
def second(first, tmp_path_factory) -> dict:
    """A store built from the sample minus 3 crystals, with 2 labels and 1 structure changed and 2
    crystals added, released as SECOND through the CLI into the same folder (a file:// URL)."""
    _, dest = first
    ids = sample_ids()
    folder = tmp_path_factory.mktemp("changed-cifs")
    removed = {ids[10][0], ids[20][0], ids[30][0]}
    relabelled = {ids[40][0], ids[41][0]}
    moved = ids[50][0]  # gets the structure of ids[51], keeps its label
    rows = []
    for name, label in ids:
        if name in removed:
            continue
        source = ids[51][0] if name == moved else name
        shutil.copy(sample_dir() / f"{source}.cif", folder / f"{name}.cif")
        rows.append((name, float(label) + 0.5 if name in relabelled else label))
    for new, like in (("mp-99999001", "mp-149"), ("mp-99999002", "mp-1265")):
        shutil.copy(sample_dir() / f"{like}.cif", folder / f"{new}.cif")
        rows.append((new, -1.0))
    with open(folder / "id_prop.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    store = tmp_path_factory.mktemp("second") / "store"
    build_from_cif_folder(folder, store, sample_settings(), workers=1, progress=False)
    result = runner.invoke(
        app, ["release", str(store), "--version", SECOND, "--to", dest.as_uri(), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    return {
        "output": " ".join(result.output.split()),
        "removed": removed,
        "relabelled": relabelled,
        "moved": moved,
    }


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


def test_release_holds_the_store_and_verifies(first):
    store, dest = first
    release = dest / FIRST
    assert verify_store(release) == []
    assert runner.invoke(app, ["verify", str(release)]).exit_code == 0
    manifest = json.loads((release / "manifest.json").read_text())
    store_manifest = json.loads((store / "manifest.json").read_text())
    for rel, entry in store_manifest["files"].items():  # every store file, byte for byte
        assert manifest["files"][rel] == entry
        assert (release / rel).read_bytes() == (store / rel).read_bytes()
    assert set(manifest["files"]) - set(store_manifest["files"]) == {
        "README.md",
        "CHANGELOG.md",
        "changes.parquet",
    }
    section = manifest["release"]
    assert section["version"] == FIRST and section["previous"] is None
    assert section["sources"] == {
        "mp": {"version": "cgcnn-2018", "records": 200, "rejected": 0, "duplicates": 0}
    }
    assert section["counts"]["records"] == 200 and section["counts"]["canonical"] == 200
    assert section["labels"] == {TARGET: {"unit": "eV/atom", "records": 200}}
    assert section["splits"][f"{TARGET}/alignn"]["sizes"] == {"train": 160, "val": 20, "test": 20}
    assert section["dedup"]["counts"]["records"] == 200
    assert section["graphs"]["config"]["max_neighbors"] == 12 and section["symmetry"]["symprec"] == 0.1
    assert section["changes"] == {"added": 200, "removed": 0, "changed": 0, "structure_changed": 0,
                                  "labels_changed": 0, "unchanged": 0}  # fmt: skip
    assert (
        crystal_data.open(release).records["uid"].to_list()
        == crystal_data.open(store).records["uid"].to_list()
    )
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_card_front_matter_and_citations(first):
    _, dest = first
    card = (dest / FIRST / "README.md").read_text()
    meta = front_matter(card)
    assert meta["license"] == "cc-by-4.0"
    assert meta["pretty_name"] == f"Crystal graphs (mp cgcnn-2018), release {FIRST}"
    assert "materials-project" in meta["tags"] and meta["size_categories"] == ["n<1K"]
    info = {entry["config_name"]: entry for entry in meta["dataset_info"]}
    assert info["records"]["splits"] == [{"name": "records", "num_examples": 200}]
    assert info[f"split-{TARGET}-alignn"]["splits"] == [{"name": "assignments", "num_examples": 200}]
    assert info["duplicates"]["splits"] == [{"name": "duplicates", "num_examples": 0}]
    features = {f["name"]: f for f in info["records"]["features"]}
    assert features["lattice"] == {"name": "lattice", "sequence": {"sequence": "float64"}}
    assert features[TARGET]["dtype"] == "float64"
    for config in meta["configs"]:  # every data_files pattern names files of the release
        for files in config["data_files"]:
            assert list((dest / FIRST).glob(files["path"])), files
    assert "| `formation_energy_per_atom` | alignn | `splits/formation_energy_per_atom/alignn.parquet` " \
           "| 160 | 20 | 20 |" in card  # fmt: skip
    assert "| `mp` | cgcnn-2018 | 200 | 0 | 0 | 200 |" in card
    assert "doi:10.1063/1.4812323" in card and "doi:10.1609/aaai.v37i6.25892" in card
    assert "Saal" not in card  # no OQMD record, no OQMD citation


def test_citations_follow_the_sources():
    databases, unknown = databases_of(["oqmd", "mp", "jarvis", "cif"])
    assert [d.name for d in databases] == ["JARVIS-DFT", "Materials Project", "OQMD"] and unknown == ["cif"]
    keys = [c.key for c in citations_of(databases)]
    assert keys == ["choudhary2020", "jain2013", "saal2013", "kirklin2015", "das2023", "xie2018"]
    assert [c.key for c in citations_of(databases_of(["crysgnn800k"])[0])] == [
        "saal2013", "kirklin2015", "jain2013", "das2023", "xie2018"
    ]  # fmt: skip


def test_second_release_has_an_exact_changelog(first, second):
    store, dest = first
    release = dest / SECOND
    assert verify_store(release) == []
    assert (
        f"against release {FIRST}" in second["output"] and "2 added, 3 removed, 3 changed" in second["output"]
    )
    old_uids = crystal_data.open(store).records["uid"].to_list()
    new_uids = crystal_data.open(release).records["uid"].to_list()
    changes = pq.read_table(release / "changes.parquet").to_pylist()
    removed = [u for u in old_uids if u.removeprefix("mp:") in second["removed"]]
    changed = [u for u in new_uids if u.removeprefix("mp:") in second["relabelled"] | {second["moved"]}]
    assert [(c["uid"], c["change"]) for c in changes] == (
        [("mp:mp-99999001", "added"), ("mp:mp-99999002", "added")]
        + [(u, "removed") for u in removed]
        + [(u, "changed") for u in changed]
    )
    flags = {
        c["uid"]: (c["structure_changed"], c["labels_changed"]) for c in changes if c["change"] == "changed"
    }
    assert flags == {f"mp:{i}": (False, True) for i in second["relabelled"]} | {
        f"mp:{second['moved']}": (True, False)
    }
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["release"]["previous"]["version"] == FIRST
    assert manifest["release"]["changes"]["unchanged"] == 194  # 200 - 3 removed - 3 changed
    log = (release / "CHANGELOG.md").read_text()
    assert (
        "| added | 2 |" in log
        and "| removed | 3 |" in log
        and "| changed | 3 (structure 1, labels 2) |" in log
    )
    assert f"- `mp:{second['moved']}`: structure" in log and "- `mp:mp-99999001`" in log
    settings = log.split("## Settings\n\n")[1].split("\n\n")[0].splitlines()
    assert len(settings) == 1 and settings[0].startswith("- dedup settings: `{")  # the second store
    assert settings[0].endswith("→ `null`")  # was not deduplicated; everything else is the same
    assert "Against release 2026.11.0: 2 added, 3 removed, 3 changed" in (release / "README.md").read_text()


def test_a_release_is_never_overwritten(first):
    store, dest = first
    before = (dest / FIRST / "manifest.json").read_bytes()
    with pytest.raises(ReleaseExists, match=f"{FIRST} already exists: a release is never overwritten"):
        publish_release(store, FIRST, dest, progress=False)
    result = runner.invoke(
        app, ["release", str(store), "--version", FIRST, "--to", str(dest), "--no-progress"]
    )
    assert result.exit_code == 1 and "never overwritten" in " ".join(result.output.split())
    assert (dest / FIRST / "manifest.json").read_bytes() == before
    with pytest.raises(ValueError, match="release version '../x'"):
        publish_release(store, "../x", dest, progress=False)


def test_a_store_that_changed_after_its_manifest_is_not_released(first, tmp_path, monkeypatch):
    store, _ = first
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    shard = copy / "records" / "part-00000.parquet"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF  # same size: only the sha256 can tell
    shard.write_bytes(bytes(data))
    with pytest.raises(
        ReleaseError, match="does not verify, nothing was released: .*part-00000.parquet: sha256"
    ):
        publish_release(copy, "1.0", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    # A change between the check and the copy: the copy's own hash refuses it, and cleans up.
    monkeypatch.setattr("crystal_data.release.publish.verify_store", lambda path: [])
    with pytest.raises(ReleaseError, match="part-00000.parquet: its sha256 or size differs"):
        publish_release(copy, "1.0", tmp_path / "out", progress=False)
    assert list((tmp_path / "out").iterdir()) == []  # the staging folder was removed


def test_tampering_with_a_release_fails_verify(first, tmp_path):
    _, dest = first
    release = tmp_path / "release"
    shutil.copytree(dest / FIRST, release)
    card = release / "README.md"
    card.write_text(card.read_text().replace("cc-by-4.0", "cc0-1.0"))
    problems = verify_store(release)
    assert any("README.md" in p and "bytes" in p for p in problems), problems
    shutil.copy(dest / FIRST / "README.md", card)
    changes = release / "changes.parquet"
    data = bytearray(changes.read_bytes())
    data[-20] ^= 0x01
    changes.write_bytes(bytes(data))
    assert verify_store(release) == [f"{changes}: sha256 differs from the manifest"]
    result = runner.invoke(app, ["verify", str(release)])
    assert result.exit_code == 1 and "changes.parquet: sha256 differs" in result.output.replace("\n", "")
    shutil.copy(dest / FIRST / "changes.parquet", changes)
    manifest = json.loads((release / "manifest.json").read_text())
    del manifest["files"]["CHANGELOG.md"]  # dropped from both the listing and the disk
    (release / "manifest.json").write_text(json.dumps(manifest))
    (release / "CHANGELOG.md").unlink()
    assert verify_store(release) == [f"{release / 'CHANGELOG.md'}: a release file not listed in the manifest"]
    manifest["files"]["CHANGELOG.md"] = json.loads((dest / FIRST / "manifest.json").read_text())["files"][
        "CHANGELOG.md"
    ]
    shutil.copy(dest / FIRST / "CHANGELOG.md", release)
    manifest["release"]["counts"]["records"] = 199  # the manifest itself: its summary must match the store
    (release / "manifest.json").write_text(json.dumps(manifest))
    assert verify_store(release) == [f"{release}: the release section says records 199, the store 200"]


class FolderRoutes(dict):
    """Upstream routes serving every file under ``root`` at ``prefix + relative path``."""

    def __init__(self, prefix: str, root: Path):
        super().__init__()
        self.prefix, self.root = prefix, root

    def get(self, path: str, default=None):
        rel = path.removeprefix(self.prefix)
        target = self.root / rel
        if not path.startswith(self.prefix) or ".." in rel.split("/") or not target.is_file():
            return default
        return lambda request: Reply(200, target.read_bytes(), {"Content-Type": "application/octet-stream"})


def test_open_by_url_then_offline_from_the_cache(first, home, monkeypatch):
    store, dest = first
    with Upstream(FolderRoutes("/releases/", dest)) as server:
        url = f"{server.url}/releases/{FIRST}/"
        opened = crystal_data.open(url)
        manifest = json.loads((dest / FIRST / "manifest.json").read_text())
        assert len(server.requests) == len(manifest["files"]) + 1  # each file once, and the manifest
        assert (
            crystal_data.open(url).path == opened.path and len(server.requests) == len(manifest["files"]) + 1
        )
    port = url.split(":")[2].split("/")[0]
    assert opened.path == home / "releases" / f"127.0.0.1_{port}" / "releases" / FIRST
    assert verify_store(opened.path) == []
    assert opened.records.equals(crystal_data.open(store).records)
    monkeypatch.setenv(OFFLINE_ENV, "1")  # the server is gone; the cache answers
    again = crystal_data.open(url)
    assert len(again) == 200 and again[5].uid == opened[5].uid
    train = crystal_data.load(url, "train", TARGET)
    assert train.uids == crystal_data.load(store, "train", TARGET).uids and len(train) == 160
    sparse = crystal_data.load(url, "train", TARGET, scheme="20-10-70")  # not in the release: drawn
    assert len(sparse) == 40 and verify_store(opened.path) == []  # in memory, the release unchanged
    monkeypatch.setenv(UNTAGGED_800K_ENV, url)  # the corpus dataset from a release URL
    assert crystal_data.load("untagged-800k").store_path == opened.path
    with pytest.raises(DatasetNotAvailable, match="is not cached at .* loading is offline"):
        crystal_data.open(url.replace(FIRST, SECOND))


def hostile(manifest_files: dict, served: dict[str, bytes]) -> dict:
    manifest = {"format": "crystal_data.store", "files": manifest_files}
    routes = {"/evil/1.0/manifest.json": lambda r: Reply.json(manifest)}
    for path, body in served.items():
        routes[path] = lambda r, body=body: Reply(200, body, {"Content-Type": "application/octet-stream"})
    return routes


def entry(body: bytes) -> dict:
    import hashlib

    return {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}


@pytest.mark.parametrize(
    ("files", "served", "message"),
    [
        ({"../x": entry(b"owned")}, {"/evil/x": b"owned"}, "unsafe file name '../x'"),
        ({"records/../../x": entry(b"owned")}, {"/evil/x": b"owned"}, "unsafe file name"),
        ({"/etc/x": entry(b"owned")}, {}, "unsafe file name '/etc/x'"),
        ({"a.parquet": {"sha256": "0" * 64, "bytes": 1 << 50}}, {}, "over the limit"),
        ({"a.parquet": entry(b"published")}, {"/evil/1.0/a.parquet": b"something"}, "sha256"),
        ({"a.parquet": entry(b"short")}, {"/evil/1.0/a.parquet": b"much longer than announced"}, "limit"),
    ],
)
def test_a_hostile_release_is_refused(home, files, served, message):
    with Upstream(hostile(files, served)) as server:
        with pytest.raises(ReleaseError, match=message):
            crystal_data.open(f"{server.url}/evil/1.0/")
        asked = [r.path for r in server.requests]
    assert "/evil/x" not in asked
    cache = home / "releases" / f"127.0.0.1_{server.url.rsplit(':', 1)[1]}"
    assert not (cache / "x").exists() and not (cache / "evil" / "x").exists()
    assert not (cache / "evil" / "1.0").exists()  # nothing looks like a complete release


def test_an_fsspec_destination(first):
    import fsspec

    store, _ = first
    report = publish_release(store, FIRST, "memory://crystal-releases", progress=False)
    fs = fsspec.filesystem("memory")
    manifest = json.loads(fs.cat_file(f"/crystal-releases/{FIRST}/manifest.json"))
    assert report.location == f"memory:///crystal-releases/{FIRST}" and report.records == 200
    assert fs.cat_file(f"/crystal-releases/{FIRST}/README.md").startswith(b"---\nlicense: cc-by-4.0")
    assert sorted(fs.find(f"/crystal-releases/{FIRST}")) == sorted(
        f"/crystal-releases/{FIRST}/{rel}" for rel in [*manifest["files"], "manifest.json"]
    )
    with pytest.raises(ReleaseExists):
        publish_release(store, FIRST, "memory://crystal-releases", progress=False)
    fs.rm("/crystal-releases", recursive=True)
