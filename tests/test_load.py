"""crystal_data.load end to end: a loopback figshare serves small files in the real JARVIS and MP-2018
formats; load downloads, builds, splits and caches them, and works offline afterwards."""

from __future__ import annotations

import json
import logging
import math
import pickle
import random
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import crystal_data
from crystal_data.cli import app
from crystal_data.datasets import CorruptSplit, DatasetNotAvailable, split_files
from crystal_data.datasets.cache import OFFLINE_ENV
from crystal_data.datasets.registry import UNTAGGED_800K_ENV
from crystal_data.graphs.config import GraphConfig
from crystal_data.home import HOME_ENV
from crystal_data.sample import sample_dir
from crystal_data.sources.jarvis import ENDPOINT_ENV
from crystal_data.store import verify_store
from tests.test_source_jarvis import DFT_PATH, MEGNET_PATH, atoms, dft_entry, figshare, make_zip
from tests.upstream import Reply, Upstream

TARGET = "formation_energy_peratom"
PAIRS = [("Na", "Cl"), ("Cs", "Cl"), ("Mg", "O"), ("Li", "F"), ("K", "Br"), ("Ca", "S"), ("Zn", "Se")]
NO_FORMATION_ENERGY = {3, 11, 17, 25}
OVERLAPPING = 7
"""Its two atoms are 0.04 Å apart: the build rejects it, though it has a target."""
DFT_MEMBER = "jdft_3d-8-18-2021.json"


def cubic(a: float, pair: tuple[str, str], second=(0.5, 0.5, 0.5)) -> dict:
    return atoms([[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]], [[0, 0, 0], list(second)], list(pair))


def dft_entries() -> list[dict]:
    """30 CsCl-type crystals, 4 with "na" formation energy, a band gap for every third, one the build
    rejects, and one without a jid."""
    entries = []
    for k in range(30):
        second = (0.01, 0.0, 0.0) if k == OVERLAPPING else (0.5, 0.5, 0.5)
        props = {TARGET: "na" if k in NO_FORMATION_ENERGY else round(-0.1 * k - 0.05, 3)}
        if k % 3 == 0:
            props["optb88vdw_bandgap"] = 0.25 * k
        entries.append(dft_entry(f"JVASP-{1000 + k}", cubic(3.4 + 0.02 * k, PAIRS[k % 7], second), **props))
    entries.append({"atoms": cubic(4.0, ("Na", "Cl")), TARGET: -1.0})  # no jid: the parser rejects it
    return entries


def megnet_entries() -> list[dict]:
    entries = [
        {
            "id": f"mp-{100 + k}",
            "atoms": cubic(3.5 + 0.03 * k, PAIRS[k % 7]),
            "e_form": -0.2 * k,
            "gap pbe": 0.1 * k,
        }
        for k in range(14)
    ]
    entries[5]["gap pbe"] = "na"
    entries.append(dict(entries[2], e_form=-9.0))  # the same id again: only the first copy is a record
    return entries


DFT = dft_entries()
DFT_ZIP = make_zip(DFT_MEMBER, DFT)
MEGNET_ZIP = make_zip("megnet.json", megnet_entries())


def recipe(n: int, n_train: int, n_val: int, n_test: int) -> dict[str, list[int]]:
    """The ALIGNN recipe, written out independently of crystal_data.splits (restores ``random``)."""
    state = random.getstate()
    ids = list(range(n))
    random.seed(123)
    random.shuffle(ids)
    random.setstate(state)
    return {"train": ids[:n_train], "val": ids[-(n_val + n_test) : -n_test], "test": ids[-n_test:]}


def expected_split(entries: list[dict], target: str, prefix: str = "jarvis:", key: str = "jid") -> dict:
    """uids per split: the entries with an id and a numeric target, in file order, through the recipe."""
    labelled = [
        prefix + e[key]
        for e in entries
        if key in e and isinstance(e.get(target), (int, float)) and math.isfinite(e[target])
    ]
    n = len(labelled)
    drawn = recipe(n, int(0.8 * n), int(0.1 * n), int(0.1 * n))
    return {split: [labelled[i] for i in ids] for split, ids in drawn.items()}


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """A data home after the first load of every jarvis split (the server is gone afterwards)."""
    home = tmp_path_factory.mktemp("home")
    routes = {DFT_PATH: figshare(DFT_ZIP), MEGNET_PATH: figshare(MEGNET_ZIP)}
    with Upstream(routes) as server, pytest.MonkeyPatch.context() as env:
        env.setenv(HOME_ENV, str(home))
        env.setenv(ENDPOINT_ENV, server.url)
        env.delenv(OFFLINE_ENV, raising=False)
        first = {
            split: crystal_data.load("jarvis", split, TARGET, workers=1) for split in ("train", "val", "test")
        }
        mp2018 = crystal_data.load("mp2018", "train", "gap pbe", scheme="80-10-10", workers=1)
        requests = [(r.method, r.path) for r in server.requests]
    return {"home": home, "first": first, "mp2018": mp2018, "requests": requests}


@pytest.fixture
def home(cached, monkeypatch) -> Path:
    monkeypatch.setenv(HOME_ENV, str(cached["home"]))
    monkeypatch.setenv(ENDPOINT_ENV, "http://127.0.0.1:9")  # nothing listens: any request would fail
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    return cached["home"]


# ------------------------------------------------------------------------------------------- jarvis
def test_first_load_downloads_once_and_splits_by_the_recipe(cached):
    expected = expected_split(DFT, TARGET)
    assert [len(v) for v in expected.values()] == [20, 2, 2]  # 26 labelled entries
    assert cached["requests"] == [("GET", DFT_PATH), ("GET", MEGNET_PATH)]
    rejected = f"jarvis:JVASP-{1000 + OVERLAPPING}"
    for split, ds in cached["first"].items():
        assert ds.uids == [uid for uid in expected[split] if uid != rejected]
        assert ds.missing == ([rejected] if rejected in expected[split] else [])
        assert len(ds) + len(ds.missing) == len(expected[split])
    uids = [set(ds.uids) | set(ds.missing) for ds in cached["first"].values()]
    assert not (uids[0] & uids[1] or uids[0] & uids[2] or uids[1] & uids[2])


def test_items_are_graphs_with_their_labels(cached):
    values = {"jarvis:" + e["jid"]: e[TARGET] for e in DFT if "jid" in e}
    ds = cached["first"]["train"]
    for i in (0, 5, len(ds) - 1, -1):
        graph, y = ds[i]
        assert graph.uid == ds.uids[i]
        assert y == values[graph.uid] == graph.labels[TARGET]
        assert graph.num_nodes == 2 and graph.edge_index.shape == (2, 24)
    records = ds.records
    assert records["uid"].to_list() == ds.uids
    assert records[TARGET].to_list() == ds.y.tolist()
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_split_files_are_stored_with_the_dataset(cached):
    store = cached["first"]["train"].store_path
    manifest = json.loads((store / "manifest.json").read_text())
    entry = manifest["splits"][f"{TARGET}/alignn"]
    assert entry["sizes"] == {"train": 20, "val": 2, "test": 2} and entry["labelled"] == 26
    assert entry["drawn_from"] == "entries" and entry["scheme"]["seed"] == 123
    assert f"splits/{TARGET}/alignn.parquet" in manifest["files"]
    assert "splits/optb88vdw_bandgap/alignn.parquet" in manifest["files"]  # every target's paper split
    assert manifest["dataset"]["name"] == "jarvis"
    assert verify_store(store) == []
    gaps = expected_split(DFT, "optb88vdw_bandgap")  # 10 labelled: its own split, 8 / 1 / 1
    import pyarrow.parquet as pq

    table = pq.read_table(store / "splits/optb88vdw_bandgap/alignn.parquet").to_pydict()
    assert table["uid"] == gaps["train"] + gaps["val"] + gaps["test"]
    assert table["split"] == ["train"] * 8 + ["val", "test"]


def test_second_load_is_offline_and_uses_the_cache(home, cached, caplog):
    caplog.set_level(logging.INFO, logger="crystal_data.load")
    again = crystal_data.load("jarvis", "validation", TARGET, offline=True)
    assert again.split == "val" and again.uids == cached["first"]["val"].uids
    assert "using the cached store" in caplog.text
    assert crystal_data.load("jarvis", "test", TARGET).uids == cached["first"]["test"].uids  # not offline


def test_stored_split_is_read_not_drawn_again(home, cached, monkeypatch):
    def refuse(self, n):
        raise AssertionError("a stored split was drawn again")

    monkeypatch.setattr(crystal_data.splits.SplitScheme, "assign", refuse)
    assert crystal_data.load("jarvis", "train", TARGET).uids == cached["first"]["train"].uids


def test_sparse_split_is_drawn_once_and_stored(home, cached):
    sparse = {s: crystal_data.load("jarvis", s, TARGET, scheme="20-10-70") for s in ("train", "val", "test")}
    assert [len(ds) + len(ds.missing) for ds in sparse.values()] == [5, 2, 18]  # int(0.2 * 26) ...
    paper = [u for u in expected_split(DFT, TARGET)["train"] if u != f"jarvis:JVASP-{1000 + OVERLAPPING}"]
    assert sparse["train"].uids == paper[: len(sparse["train"])]  # the same shuffle
    manifest = json.loads((sparse["train"].store_path / "manifest.json").read_text())
    assert f"splits/{TARGET}/20-10-70.parquet" in manifest["files"]
    assert verify_store(sparse["train"].store_path) == []


def test_changed_graph_config_rebuilds_and_says_so(home, cached, caplog):
    caplog.set_level(logging.INFO, logger="crystal_data.load")
    config = GraphConfig(max_neighbors=4)
    ds = crystal_data.load("jarvis", "train", TARGET, graph=config, offline=True, workers=1)
    old = cached["first"]["train"].store_path.name
    assert f"graph config {config.hash}" in caplog.text and f"cached configs: {old}" in caplog.text
    assert ds.store_path.name == config.hash != old
    assert ds.uids == cached["first"]["train"].uids  # the split does not depend on the featurizer
    assert ds[0].graph.edge_index.shape == (2, 8)  # 4 neighbours for each of 2 atoms
    caplog.clear()
    crystal_data.load("jarvis", "train", TARGET, graph=config, offline=True)
    assert f"using the cached store {ds.store_path}" in caplog.text


def test_corrupted_split_file_is_refused(home, cached, tmp_path):
    store = tmp_path / "copy"
    shutil.copytree(cached["first"]["train"].store_path, store)
    split = store / f"splits/{TARGET}/alignn.parquet"
    split.write_bytes(split.read_bytes()[:-9] + b"corrupted")
    with pytest.raises(CorruptSplit, match="sha256 differs"):
        crystal_data.load(store, "train", TARGET)


def test_clear_errors_come_before_any_download(tmp_path, monkeypatch):
    monkeypatch.setenv(HOME_ENV, str(tmp_path))  # nothing cached
    monkeypatch.setenv(ENDPOINT_ENV, "http://127.0.0.1:9")  # nothing listens
    with pytest.raises(
        ValueError, match=r"unknown split 'dev'; valid splits: train, val \(alias: validation\), test"
    ):
        crystal_data.load("jarvis", "dev", TARGET)
    with pytest.raises(
        ValueError, match=r"jarvis has no target 'band_gap'; its targets: formation_energy_peratom"
    ):
        crystal_data.load("jarvis", "train", "band_gap")
    with pytest.raises(ValueError, match="needs a target: .* each target has its own split"):
        crystal_data.load("jarvis", "train")
    with pytest.raises(
        ValueError, match="unknown dataset 'jarvsi'; known: jarvis, mp2018, oqmd-exp, untagged-800k"
    ):
        crystal_data.load("jarvsi")
    with pytest.raises(ValueError, match="unknown split scheme"):
        crystal_data.load("jarvis", "train", TARGET, scheme="eighty")
    assert not (tmp_path / "raw").exists() and not (tmp_path / "stores").exists()


def test_torch_batches(cached):
    import torch

    ds = cached["first"]["train"]
    torch_ds = ds.to_torch()
    data = torch_ds[0]
    assert data.x.shape == (2, 92) and data.x.dtype == torch.float32
    assert data.edge_index.shape == (2, 24) and data.edge_distance.shape == (24,)
    assert data.y.tolist() == pytest.approx([ds.y[0]])
    batch = next(iter(ds.dataloader(batch_size=4, shuffle=False)))
    assert (
        batch.num_graphs == 4
        and batch.x.shape == (8, 92)
        and batch.batch.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    )
    assert batch.edge_index.shape == (2, 96) and int(batch.edge_index.max()) == 7
    assert batch.lattice.shape == (4, 3, 3) and batch.y.shape == (4,)
    assert batch.y.tolist() == pytest.approx(ds.y[:4].tolist())
    assert batch.uid == ds.uids[:4]
    # An edge vector from the stored image offsets has the stored length.
    src, dst = data.edge_index
    vectors = data.pos[src] + data.edge_image.float() @ data.lattice[0] - data.pos[dst]
    assert torch.allclose(vectors.norm(dim=1), data.edge_distance, atol=1e-4)


def test_dataset_pickles_without_its_shards(cached):
    ds = cached["first"]["test"]
    ds[0]  # opens the store and caches a shard
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._store is None and copy[0].graph.uid == ds[0].graph.uid


# ------------------------------------------------------------------------------------------- mp2018
def test_mp2018_targets_with_spaces_duplicates_and_counts(home, cached):
    ds = cached["mp2018"]
    entries = megnet_entries()
    labelled = [(k, "megnet:" + e["id"]) for k, e in enumerate(entries) if isinstance(e["gap pbe"], float)]
    assert len(labelled) == 14  # one "na"; the repeated id counts, as it does upstream
    train = [labelled[i] for i in recipe(14, 11, 1, 1)["train"]]
    assert ds.uids == [uid for k, uid in train if k != 14]
    assert ds.missing == [uid for k, uid in train if k == 14]  # the repeated id is not a second record
    assert ds.y.tolist() == pytest.approx([entries[k]["gap pbe"] for k, _ in train if k != 14])
    assert (ds.store_path / "splits/gap pbe/80-10-10.parquet").is_file()
    with pytest.raises(
        ValueError, match=r"60000 \+ 5000 \+ 4239 entries asked for, but only 15 have the target"
    ):
        crystal_data.load("mp2018", "train", "e_form")


def _load_train_uids(queue) -> None:
    queue.put(crystal_data.load("jarvis", "train", TARGET, workers=1).uids)


def test_concurrent_first_loads_build_once(tmp_path, monkeypatch):
    """Two processes (DDP ranks on a fresh machine) load at once: one download, one build, one answer."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with Upstream({DFT_PATH: figshare(DFT_ZIP)}) as server:
        monkeypatch.setenv(HOME_ENV, str(tmp_path))
        monkeypatch.setenv(ENDPOINT_ENV, server.url)
        monkeypatch.delenv(OFFLINE_ENV, raising=False)
        queue = context.Queue()
        ranks = [context.Process(target=_load_train_uids, args=(queue,)) for _ in range(2)]
        for rank in ranks:
            rank.start()
        answers = [queue.get(timeout=60) for _ in ranks]
        for rank in ranks:
            rank.join(timeout=60)
        assert [rank.exitcode for rank in ranks] == [0, 0]
        assert [r.path for r in server.requests] == [DFT_PATH]
    assert answers[0] == answers[1] and len(answers[0]) == 19


# ------------------------------------------------------------------------------- offline, by hand
def test_offline_with_nothing_cached_says_which_file_goes_where(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    place = tmp_path / "raw/jarvis-dft-3d-2021/files/jdft_3d-8-18-2021.json.zip"
    with pytest.raises(DatasetNotAvailable) as error:
        crystal_data.load("jarvis", "train", TARGET)
    message = str(error.value)
    assert "not cached and loading is offline" in message
    assert f"place it at {place}" in message and "a zip holding jdft_3d-8-18-2021.json" in message
    assert "/files/29204826" in message  # the figshare file to download elsewhere

    place.parent.mkdir(parents=True)
    place.write_bytes(b"<html>figshare error page</html>")
    with pytest.raises(DatasetNotAvailable, match="placed by hand but is not the expected file: an HTML"):
        crystal_data.load("jarvis", "train", TARGET)

    place.write_bytes(DFT_ZIP)  # placed by hand, as the message says
    caplog.set_level(logging.INFO, logger="crystal_data.load")
    ds = crystal_data.load("jarvis", "train", TARGET, workers=1)
    assert ds.uids == [
        u for u in expected_split(DFT, TARGET)["train"] if u != f"jarvis:JVASP-{1000 + OVERLAPPING}"
    ]
    sidecar = json.loads(place.with_name(place.name + ".meta.json").read_text())
    assert sidecar["sha256_source"] == "placed-by-user" and sidecar["entries"] == len(DFT)
    assert "using the file placed at" in caplog.text


def test_failed_download_says_which_file_goes_where(tmp_path, monkeypatch):
    with Upstream({DFT_PATH: lambda request: Reply(404, b"not found")}) as server:
        monkeypatch.setenv(HOME_ENV, str(tmp_path))
        monkeypatch.setenv(ENDPOINT_ENV, server.url)
        monkeypatch.delenv(OFFLINE_ENV, raising=False)
        with pytest.raises(DatasetNotAvailable) as error:
            crystal_data.load("jarvis", "train", TARGET)
    message = str(error.value)
    assert "the download failed" in message and "HTTP 404" in message
    assert str(tmp_path / "raw/jarvis-dft-3d-2021/files/jdft_3d-8-18-2021.json.zip") in message


# ------------------------------------------------------------------------------------- store paths
@pytest.fixture
def store_copy(sample_store, tmp_path, monkeypatch) -> Path:
    """A private copy of the 200-crystal sample store (splits are written into it)."""
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    copy = tmp_path / "store"
    shutil.copytree(sample_store, copy)
    return copy


def test_a_store_path_works_the_same_way(store_copy, sample_labels):
    target = "formation_energy_per_atom"
    splits = {s: crystal_data.load(store_copy, s, target) for s in ("train", "val", "test")}
    drawn = recipe(200, 160, 20, 20)
    uids = crystal_data.open(store_copy).records["uid"].to_list()
    for split, ds in splits.items():
        assert ds.uids == [uids[i] for i in drawn[split]]
        assert ds.y.tolist() == [sample_labels[uids[i].removeprefix("mp:")] for i in drawn[split]]
    manifest = json.loads((store_copy / "manifest.json").read_text())
    assert manifest["splits"][f"{target}/alignn"]["drawn_from"] == "records"
    assert verify_store(store_copy) == []
    assert len(crystal_data.load(str(store_copy))) == 200  # split "all", no target
    sparse = recipe(200, 120, 20, 60)["val"]
    assert crystal_data.load(store_copy, "val", target, scheme="60-10-30").uids == [uids[i] for i in sparse]
    with pytest.raises(ValueError, match="has no graphs for .* is not rebuilt"):
        crystal_data.load(store_copy, "train", target, graph=GraphConfig(cutoff=6.0))


def test_a_store_that_cannot_be_written_gets_its_split_in_memory(store_copy, monkeypatch, caplog):
    def refuse(*args):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(split_files, "_write", refuse)
    ds = crystal_data.load(store_copy, "test", "formation_energy_per_atom")
    assert len(ds) == 20 and "cannot store split alignn" in caplog.text
    assert "splits" not in json.loads((store_copy / "manifest.json").read_text())


# ----------------------------------------------------------------------------- oqmd-exp, corpus
def test_oqmd_exp_is_a_folder_placed_by_hand(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    folder = tmp_path / "raw/oqmd-exp"
    with pytest.raises(DatasetNotAvailable) as error:
        crystal_data.load("oqmd-exp", "train", "e_form_expt")
    assert f"place a CGCNN-layout folder at {folder}: id_prop.csv" in str(error.value)
    assert "'ID,VALUE' per crystal (e_form_expt, eV/atom)" in str(error.value)

    folder.mkdir(parents=True)
    cifs = sorted(sample_dir().glob("*.cif"))[:12]
    for cif in cifs:
        shutil.copy(cif, folder)
    lines = [f"{cif.stem},{-0.1 * k:.2f}" for k, cif in enumerate(cifs)]
    (folder / "id_prop.csv").write_text("\n".join(lines) + "\n")
    ds = crystal_data.load("oqmd-exp", "train", "e_form_expt", workers=1)
    drawn = recipe(12, 9, 1, 1)
    assert ds.uids == [f"oqmd-exp:{cifs[i].stem}" for i in drawn["train"]]
    assert ds.y.tolist() == pytest.approx([-0.1 * i for i in drawn["train"]])

    (folder / "id_prop.csv").write_text("\n".join(lines[:10]) + "\n")  # the folder changes
    caplog.set_level(logging.INFO, logger="crystal_data.load")
    smaller = crystal_data.load("oqmd-exp", "all", "e_form_expt", workers=1)
    assert "changed since" in caplog.text and "rebuilding" in caplog.text
    assert len(smaller) == 10  # the two unlisted CIFs are kept, unlabelled


def test_untagged_800k_by_path(sample_store, tmp_path, monkeypatch):
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    monkeypatch.delenv(UNTAGGED_800K_ENV, raising=False)
    with pytest.raises(
        DatasetNotAvailable, match=r"untagged-800k is not built at .*stores/untagged-800k: build"
    ):
        crystal_data.load("untagged-800k")
    monkeypatch.setenv(UNTAGGED_800K_ENV, "https://example.org/releases/untagged-800k/2026.11.0/")
    monkeypatch.setenv(OFFLINE_ENV, "1")  # a release URL is read from the cache; nothing is cached here
    with pytest.raises(DatasetNotAvailable, match=r"release https://example.org/\S+ is not cached at"):
        crystal_data.load("untagged-800k")
    monkeypatch.delenv(OFFLINE_ENV)
    monkeypatch.setenv(UNTAGGED_800K_ENV, str(sample_store))
    corpus = crystal_data.load("untagged-800k")
    assert len(corpus) == 200 and corpus.target is None and corpus[3].y is None


def test_cli_prints_split_sizes(store_copy):
    result = CliRunner().invoke(app, ["load", str(store_copy), "--target", "formation_energy_per_atom"])
    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())  # rich wraps long lines at the terminal width
    assert "200 with the target; split alignn (seed 123): train 160 / val 20 / test 20" in words
    result = CliRunner().invoke(app, ["load", str(store_copy), "--target", "band_gap"])
    assert result.exit_code == 1 and "has no target 'band_gap'" in " ".join(result.output.split())
