"""ALIGNN graphs: the neighbour rule against pymatgen, bond and angle geometry on known crystals, and
the graphs added to a store as a second featurizer (verify, resume, open, load, CLI)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import crystal_data
from crystal_data.cli import app
from crystal_data.graphs.alignn import alignn_graph
from crystal_data.graphs.config import AlignnGraphConfig, GraphConfig, graph_config_from_dict
from crystal_data.readers.cif import parse_cif
from crystal_data.sample import sample_dir
from crystal_data.store import add_graphs as add_graphs_module
from crystal_data.store import open_store, verify_store
from crystal_data.store.add_graphs import add_graphs
from tests.conftest import sample_settings

CONFIG = AlignnGraphConfig()
KNN_HASH = "d2c598557ae7"
SMALL = sorted(sample_dir().glob("*.cif"), key=lambda p: p.stat().st_size)[:12]
MEDIUM = sorted(sample_dir().glob("*.cif"), key=lambda p: p.stat().st_size)[100:103]
FCC = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
ROCK_SALT = (np.eye(3) * 5.64, FCC + [[0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])  # conventional
DIAMOND = (np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * 5.43, [[0, 0, 0], [0.25, 0.25, 0.25]])
HAND_MADE = {
    "sparse-cube-1-atom": (np.eye(3) * 20.0, [[0, 0, 0]]),  # 6 at 20 Å: the cutoff grows to 20, then 40
    "slab-1-atom": (np.diag([3.0, 3.0, 30.0]), [[0, 0, 0]]),
    "two-far-atoms": (np.eye(3) * 15.0, [[0, 0, 0], [0.1, 0.2, 0.3]]),
    "skewed-cell": (np.array([[4.0, 0, 0], [3.7, 1.5, 0], [0.4, 0.3, 9.0]]), [[0, 0, 0], [0.3, 0.6, 0.5]]),
    "rock-salt": ROCK_SALT,
    "diamond": DIAMOND,
}


def oracle(lattice, frac, k=12, cutoff=8.0, tol=1e-6) -> Counter:
    """Directed edges (source, target, source image) -> multiplicity, with pymatgen's neighbour lists
    and ALIGNN's rule: grow the cutoff until every site has k neighbours, keep each site's neighbours
    up to its k-th distance, key a bond by (lower index, higher index, image of the higher), one key for
    a self bond's I and -I, then both directions."""
    from pymatgen.core import Lattice, Structure

    structure = Structure(Lattice(lattice), ["H"] * len(frac), frac)
    radius = cutoff
    while True:
        neighbors = structure.get_all_neighbors(radius)
        if min(len(n) for n in neighbors) >= k:
            break
        longest = max(structure.lattice.abc)
        radius = longest if radius < longest else 2 * radius
    bonds = set()
    for i, found in enumerate(neighbors):
        kth = sorted(n.nn_distance for n in found)[k - 1]
        for n in found:
            if n.nn_distance <= kth + tol:
                j, image = n.index, tuple(int(round(v)) for v in n.image)
                minus = tuple(-v for v in image)
                bonds.add((i, j, image) if i < j else (j, i, minus) if j < i else (i, i, max(image, minus)))
    edges = Counter()
    for lo, hi, image in bonds:
        edges[(hi, lo, image)] += 1
        edges[(lo, hi, tuple(-v for v in image))] += 1
    return edges


def edges_of(graph) -> Counter:
    return Counter(
        (int(s), int(t), tuple(int(v) for v in image))
        for (s, t), image in zip(graph.edge_index.T, graph.edge_image)
    )


def structures():
    for path in SMALL + MEDIUM:
        parsed = parse_cif(path.read_bytes())
        yield path.stem, parsed.lattice, parsed.frac_coords
    for name, (lattice, frac) in HAND_MADE.items():
        yield name, np.asarray(lattice, float), np.asarray(frac, float)


CASES = list(structures())


@pytest.mark.parametrize(("name", "lattice", "frac"), CASES, ids=[c[0] for c in CASES])
def test_edges_match_pymatgen_and_are_undirected(name, lattice, frac):
    graph = alignn_graph(lattice, frac, CONFIG)
    expected = oracle(lattice, frac)
    assert edges_of(graph) == expected and max(expected.values()) == 1  # each bond once per direction
    source, target = graph.edge_index.astype(np.int64)
    cart = frac @ lattice
    vectors = cart[target] - cart[source] - graph.edge_image @ lattice
    np.testing.assert_allclose(graph.edge_vector, vectors, atol=1e-5)
    np.testing.assert_allclose(graph.edge_distance, np.linalg.norm(vectors, axis=1), atol=1e-5)
    assert (np.bincount(target, minlength=len(frac)) >= 12).all()
    reverse = {key: e for e, key in enumerate(zip(target, source, map(tuple, -graph.edge_image)))}
    back = np.array([reverse[key] for key in zip(source, target, map(tuple, graph.edge_image))])
    np.testing.assert_allclose(graph.edge_vector[back], -graph.edge_vector, atol=1e-5)
    assert np.all(np.diff(target) >= 0)  # grouped by target

    # line graph: every (e1 into b, e2 out of b), backtracking included, each once
    e1, e2 = graph.line_index.astype(np.int64)
    indeg = np.bincount(target, minlength=len(frac))
    outdeg = np.bincount(source, minlength=len(frac))
    assert graph.num_pairs == int((indeg * outdeg).sum())
    assert np.array_equal(target[e1], source[e2])
    assert len(set(zip(e1.tolist(), e2.tolist()))) == graph.num_pairs
    pairs = set(zip(e1.tolist(), e2.tolist()))
    assert all((e, int(back[e])) in pairs for e in range(graph.num_edges))
    r1, r2 = vectors[e1], vectors[e2]
    cos = -(r1 * r2).sum(axis=1) / np.linalg.norm(r1, axis=1) / np.linalg.norm(r2, axis=1)
    np.testing.assert_allclose(graph.line_cos, cos, atol=1e-5)
    assert np.all(np.abs(graph.line_cos) <= 1)


def test_cutoff_growth_on_a_sparse_cell():
    graph = alignn_graph(np.eye(3) * 20.0, np.zeros((1, 3)), CONFIG)
    # 6 images at 20 Å and 12 at 20√2 Å: every 12th-neighbour tie is kept, so 18 edges into the atom
    assert graph.num_edges == 18
    assert sorted(np.round(graph.edge_distance.astype(float), 3).tolist()) == [20.0] * 6 + [28.284] * 12


def nearest_angles(graph, nearest: float) -> Counter:
    """Angle (degrees) -> pairs among nearest-neighbour bonds only."""
    close = np.abs(graph.edge_distance - nearest) < 1e-3
    e1, e2 = graph.line_index
    both = close[e1] & close[e2]
    return Counter(np.round(np.degrees(np.arccos(graph.line_cos[both].astype(np.float64))), 2).tolist())


def test_rock_salt_bond_angles():
    lattice, frac = ROCK_SALT
    graph = alignn_graph(lattice, np.array(frac, float), CONFIG)
    # 6 octahedral bonds per atom (2.82 Å) and 12 second neighbours (3.99 Å), the 12th
    assert graph.num_edges == 8 * 18
    # per atom: 6 backtracking pairs (0°), 24 at 90°, 6 at 180°
    assert nearest_angles(graph, 2.82) == {0.0: 8 * 6, 90.0: 8 * 24, 180.0: 8 * 6}


def test_diamond_bond_angles():
    lattice, frac = DIAMOND
    graph = alignn_graph(lattice, np.array(frac, float), CONFIG)
    assert graph.num_edges == 2 * 16  # 4 bonds at 2.35 Å and 12 at 3.84 Å per atom
    assert nearest_angles(graph, 2.3513) == {0.0: 2 * 4, 109.47: 2 * 12}
    tetrahedral = graph.line_cos[np.isclose(graph.line_cos, -1 / 3, atol=1e-4)]
    np.testing.assert_allclose(tetrahedral, -1 / 3, atol=1e-6)


def test_configs_and_hashes():
    assert GraphConfig().hash == KNN_HASH  # existing stores keep their folder names
    assert CONFIG.hash == "706a789aa78d"
    assert CONFIG.to_dict() == {"kind": "alignn", "cutoff": 8.0, "max_neighbors": 12, "tie_tolerance": 1e-6}
    assert graph_config_from_dict(CONFIG.to_dict()) == CONFIG
    assert graph_config_from_dict(GraphConfig().to_dict()).hash == KNN_HASH
    with pytest.raises(ValueError, match="unknown graph kind"):
        graph_config_from_dict({"kind": "voronoi"})


# ------------------------------------------------------------------------------------------- store
def file_digests(store: Path) -> dict[str, str]:
    return {
        p.relative_to(store).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def four_shards(tmp_path_factory) -> Path:
    """The sample built in 4 shards of 50."""
    from crystal_data.build import build_from_cif_folder

    out = tmp_path_factory.mktemp("alignn") / "store"
    build_from_cif_folder(sample_dir(), out, sample_settings(shard_size=50), workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def with_alignn(four_shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("alignn-added") / "store"
    shutil.copytree(four_shards, out)
    add_graphs(out, CONFIG, workers=2, progress=False)
    return out


def test_added_graphs_verify_and_read_back(four_shards, with_alignn):
    assert verify_store(with_alignn) == []
    before, after = (json.loads((s / "manifest.json").read_text()) for s in (four_shards, with_alignn))
    assert after["default_graphs"] == KNN_HASH and after["counts"] == before["counts"]
    assert after["graphs"] == {KNN_HASH: GraphConfig().to_dict(), CONFIG.hash: CONFIG.to_dict()}
    knn_files = {k: v for k, v in after["files"].items() if not k.startswith(f"graphs/{CONFIG.hash}/")}
    assert knn_files == before["files"]  # nothing else changed

    knn, store = crystal_data.open(with_alignn), crystal_data.open(with_alignn, graphs=CONFIG.hash)
    assert len(store) == len(knn) == 200 and knn[0].line_index is None
    for i in (0, 57, 199):
        sample = store[i]
        graph = alignn_graph(sample.lattice, sample.frac_coords, CONFIG)
        assert sample.uid == knn[i].uid
        np.testing.assert_array_equal(sample.atomic_numbers, knn[i].atomic_numbers)
        for name in ("edge_index", "edge_distance", "edge_image", "edge_vector", "line_index", "line_cos"):
            np.testing.assert_array_equal(getattr(sample, name), getattr(graph, name))
    edges = sum(s.num_edges for s in store)
    assert edges == sum(int(np.diff(sh.edge_ptr).sum()) for sh in store.iter_shards())
    assert all((np.bincount(s.edge_index[1], minlength=s.num_nodes) >= 12).all() for s in store)


def test_adding_again_is_a_no_op(with_alignn):
    digests = file_digests(with_alignn)
    report = add_graphs(with_alignn, CONFIG, workers=1, progress=False)
    assert report.shards_done_before == report.shards == 4
    assert file_digests(with_alignn) == digests


def test_interrupted_run_resumes_to_the_same_bytes(four_shards, with_alignn, tmp_path, monkeypatch):
    store = tmp_path / "store"
    shutil.copytree(four_shards, store)
    commit, calls = add_graphs_module._commit, []

    def killed_after_two(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(args[1])
        commit(*args)

    monkeypatch.setattr(add_graphs_module, "_commit", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        add_graphs(store, CONFIG, workers=1, progress=False)
    assert any("not listed in the manifest" in p for p in verify_store(store))
    monkeypatch.setattr(add_graphs_module, "_commit", commit)
    report = add_graphs(store, CONFIG, workers=1, progress=False)
    assert (report.shards, report.shards_done_before) == (4, 2)
    assert file_digests(store) == file_digests(with_alignn)


def test_a_crystal_that_fails_names_its_uid(four_shards, tmp_path, monkeypatch):
    store = tmp_path / "store"
    shutil.copytree(four_shards, store)
    victim = crystal_data.open(store)[60].frac_coords

    def failing(lattice, frac, config):
        if np.array_equal(frac, victim):
            raise ValueError("boom")
        return alignn_graph(lattice, frac, config)

    monkeypatch.setattr(add_graphs_module, "alignn_graph", failing)
    uid = crystal_data.open(store)[60].uid
    with pytest.raises(RuntimeError, match=f"{uid}: no ALIGNN graph"):
        add_graphs(store, CONFIG, workers=1, progress=False)
    assert CONFIG.hash not in json.loads((store / "manifest.json").read_text())["graphs"]


def test_load_a_store_path_with_alignn_graphs(four_shards, with_alignn):
    ds = crystal_data.load(with_alignn, graph=CONFIG)
    default = crystal_data.load(with_alignn)
    assert len(ds) == len(default) == 200
    item = ds[3].graph
    assert item.uid == default[3].graph.uid and item.line_cos is not None
    assert item.line_index.max() < item.num_edges
    with pytest.raises(ValueError, match="crystal-data graphs .* --kind alignn"):
        crystal_data.load(four_shards, graph=CONFIG)


def test_torch_view_batches_line_graphs_like_the_loader(with_alignn):
    import torch
    from torch_geometric.data import Batch

    from crysgnn_models.loader import GraphStream
    from crystal_data.dataset import shard_cache_size

    ds = crystal_data.load(with_alignn, graph=CONFIG)
    pyg = Batch.from_data_list([ds.to_torch()[i] for i in range(6)])
    ours = next(iter(GraphStream(with_alignn, batch_size=6, shuffle=False, graphs=CONFIG.hash)))
    for name in ("edge_index", "edge_vector", "line_index", "line_cos"):
        assert torch.equal(getattr(pyg, name), getattr(ours, name).to(getattr(pyg, name).dtype)), name
    first = ds[0].graph
    # the second crystal's pairs are offset by the first crystal's edges
    assert int(pyg.line_index[:, len(first.line_cos)].min()) >= first.num_edges
    # e1 ends at the atom e2 starts from, across the whole batch
    assert torch.equal(pyg.edge_index[1, pyg.line_index[0]], pyg.edge_index[0, pyg.line_index[1]])
    manifest = json.loads((with_alignn / "manifest.json").read_text())
    budget = 10 * 2**20
    assert shard_cache_size(manifest, budget, CONFIG.hash) < shard_cache_size(manifest, budget, None)


def test_load_a_named_dataset_with_alignn_graphs(tmp_path, monkeypatch):
    from crystal_data.datasets.cache import OFFLINE_ENV
    from crystal_data.home import HOME_ENV
    from crystal_data.sources.jarvis import ENDPOINT_ENV
    from tests.test_load import DFT_PATH, DFT_ZIP, MEGNET_PATH, MEGNET_ZIP, TARGET
    from tests.test_source_jarvis import figshare
    from tests.upstream import Upstream

    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    with Upstream({DFT_PATH: figshare(DFT_ZIP), MEGNET_PATH: figshare(MEGNET_ZIP)}) as server:
        monkeypatch.setenv(ENDPOINT_ENV, server.url)
        ds = crystal_data.load("jarvis", "train", TARGET, graph=CONFIG, workers=1)
    default = crystal_data.load("jarvis", "train", TARGET, offline=True)
    assert ds.store_path == default.store_path and ds.store_path.name == KNN_HASH
    assert ds.uids == default.uids and len(ds) == 19  # 20 drawn, one rejected by the build
    graph = ds[0].graph
    assert graph.num_nodes == 2 and graph.line_index is not None  # CsCl type: 8 + 6 neighbours, 2 atoms
    assert graph.num_edges == 2 * 14 and graph.line_index.shape[1] == 2 * 14 * 14
    assert verify_store(ds.store_path) == []


def test_cli_adds_graphs(four_shards, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(four_shards, store)
    result = CliRunner().invoke(
        app, ["graphs", str(store), "--kind", "alignn", "--workers", "1", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert CONFIG.hash in " ".join(result.output.split())
    assert open_store(store, graphs=CONFIG.hash)[0].line_cos is not None
    assert CliRunner().invoke(app, ["verify", str(store)]).exit_code == 0
    refused = CliRunner().invoke(app, ["graphs", str(store), "--kind", "voronoi"])
    assert refused.exit_code == 2 and "only 'alignn'" in refused.output
