"""The multigraph against an independent brute-force computation and known crystal geometry."""

import itertools

import numpy as np
import pytest

from crystal_data.errors import RejectedInput
from crystal_data.graphs import GraphConfig, nearest_neighbor_graph
from crystal_data.readers.cif import parse_cif
from crystal_data.sample import sample_dir

CONFIG = GraphConfig()


def brute_force(lattice, frac, cutoff=8.0, k=12, tolerance=1e-6):
    """Every image in a box large enough for the cutoff, all distances, the documented order."""
    heights = 1.0 / np.linalg.norm(np.linalg.inv(lattice).T, axis=1)  # spacing of lattice planes
    reach = [int(np.ceil(cutoff / h)) + 1 for h in heights]
    images = np.array(list(itertools.product(*(range(-r, r + 1) for r in reach))), dtype=np.int64)
    edges = []
    for i in range(len(frac)):
        dist = np.linalg.norm(
            (frac[:, None, :] + images[None] - frac[i]) @ lattice, axis=2
        )  # (atoms, images)
        found = sorted(
            (float(dist[j, m]), int(j), *images[m].tolist())
            for j, m in zip(*np.nonzero(dist <= cutoff))
            if not (j == i and not images[m].any())
        )
        shells, shell = [], 0
        for n, row in enumerate(found):
            if n and row[0] - found[n - 1][0] > tolerance:
                shell += 1
            shells.append((shell, *row[1:], row[0]))
        shells.sort(key=lambda row: row[:5])
        edges.extend((row[1], i, tuple(row[2:5]), row[5]) for row in shells[:k])
    return edges


def crystals(names):
    for name in names:
        parsed = parse_cif((sample_dir() / f"{name}.cif").read_bytes())
        yield name, parsed.lattice, parsed.frac_coords


SMALL = sorted(p.stem for p in sample_dir().glob("*.cif") if p.stat().st_size < 1900)[:25]


@pytest.mark.parametrize(("name", "lattice", "frac"), list(crystals(SMALL)), ids=SMALL)
def test_parity_with_brute_force(name, lattice, frac):
    graph = nearest_neighbor_graph(lattice, frac, CONFIG)
    expected = brute_force(lattice, frac)
    got = [
        (int(s), int(t), tuple(int(v) for v in img), float(d))
        for (s, t), img, d in zip(graph.edge_index.T, graph.edge_image, graph.edge_distance)
    ]
    assert [row[:3] for row in got] == [row[:3] for row in expected]
    np.testing.assert_allclose([row[3] for row in got], [row[3] for row in expected], atol=1e-5)


def test_enough_small_crystals_for_parity():
    assert len(SMALL) == 25


def test_parity_with_brute_force_on_shared_set(shared_cifs):
    checked = 0
    for path in shared_cifs[::10]:
        parsed = parse_cif(path.read_bytes())
        graph = nearest_neighbor_graph(parsed.lattice, parsed.frac_coords, CONFIG)
        expected = brute_force(parsed.lattice, parsed.frac_coords)
        got = [
            (int(s), int(t), tuple(int(v) for v in img))
            for (s, t), img in zip(graph.edge_index.T, graph.edge_image)
        ]
        assert got == [row[:3] for row in expected], path.name
        np.testing.assert_allclose(graph.edge_distance, [row[3] for row in expected], atol=1e-5)
        checked += 1
    assert checked == 34


def test_distances_follow_the_edge_convention():
    ((_, lattice, frac),) = crystals(["mp-2858"])
    graph = nearest_neighbor_graph(lattice, frac, CONFIG)
    source, target = graph.edge_index
    vectors = (frac[source] + graph.edge_image - frac[target]) @ lattice
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), graph.edge_distance, atol=1e-5)
    assert graph.edge_index.dtype == np.int32 and graph.edge_image.dtype == np.int8
    assert graph.edge_distance.dtype == np.float32
    assert np.all(np.diff(target) >= 0)  # grouped by centre atom
    assert np.bincount(target).tolist() == [12] * len(frac)


def test_rock_salt_shells():
    ((_, lattice, frac),) = crystals(["mp-22862"])
    a = np.linalg.norm(lattice[0])  # fcc primitive vector = Na-Na distance
    assert a == pytest.approx(4.02463542)
    graph = nearest_neighbor_graph(lattice, frac, CONFIG)
    na = graph.edge_index[1] == 0
    distances = np.sort(graph.edge_distance[na])
    np.testing.assert_allclose(distances[:6], a / np.sqrt(2), atol=1e-5)  # 6 Cl
    np.testing.assert_allclose(distances[6:], a, atol=1e-5)  # 6 of the 12 Na
    assert (graph.edge_index[0][na][:6] == 1).all()


def test_copper_has_twelve_nearest_neighbours():
    ((_, lattice, frac),) = crystals(["mp-30"])
    graph = nearest_neighbor_graph(lattice, frac, CONFIG)
    np.testing.assert_allclose(graph.edge_distance, 2.56062, atol=1e-5)
    assert (graph.edge_index == 0).all()  # all twelve are images of the single atom: self-image edges
    assert len({tuple(img) for img in graph.edge_image}) == 12


def test_shell_cut_by_the_limit_keeps_lowest_images():
    """bcc Cs, 1 atom: 8 neighbours at 5.29 Å, then 6 at 6.11 Å of which 4 fit in the 12."""
    from pymatgen.core import Lattice

    lattice = np.array(Lattice.from_parameters(5.291, 5.291, 5.291, 109.4712, 109.4712, 109.4712).matrix)
    graph = nearest_neighbor_graph(lattice, np.zeros((1, 3)), CONFIG)
    distances = graph.edge_distance
    assert np.allclose(distances[:8], 5.291, atol=1e-3) and np.allclose(distances[8:], 6.1096, atol=1e-3)
    second_shell = sorted(
        tuple(img)
        for img in itertools.product(range(-2, 3), repeat=3)
        if abs(np.linalg.norm(np.array(img) @ lattice) - distances[-1]) < 1e-4
    )
    assert len(second_shell) == 6
    assert [tuple(int(v) for v in img) for img in graph.edge_image[8:]] == second_shell[:4]


def test_fewer_neighbours_than_the_limit_means_fewer_edges():
    lattice = np.eye(3) * 6.0  # simple cubic: 6 neighbours at 6 Å, the next shell at 8.49 Å
    graph = nearest_neighbor_graph(lattice, np.zeros((1, 3)), CONFIG)
    assert graph.num_edges == 6
    np.testing.assert_allclose(graph.edge_distance, 6.0)


def test_no_neighbour_within_cutoff_means_no_edge():
    graph = nearest_neighbor_graph(np.eye(3) * 20.0, np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), CONFIG)
    assert graph.num_edges == 0 and graph.edge_index.shape == (2, 0)


def test_overlapping_atoms_are_rejected():
    with pytest.raises(RejectedInput, match="sites 1 and 0 are 0.1000 Å apart"):
        nearest_neighbor_graph(np.eye(3) * 5.0, np.array([[0, 0, 0], [0.02, 0, 0]]), CONFIG)


def test_config_changes_the_recipe_and_the_hash():
    ((_, lattice, frac),) = crystals(["mp-22862"])
    small = GraphConfig(cutoff=3.0, max_neighbors=4)
    graph = nearest_neighbor_graph(lattice, frac, small)
    assert graph.num_edges == 2 * 4 and graph.edge_distance.max() < 3.0
    assert small.hash != CONFIG.hash and len(CONFIG.hash) == 12
    assert GraphConfig.from_dict(CONFIG.to_dict()).hash == CONFIG.hash
