import numpy as np
import pytest

from crystal_data.graphs import GraphConfig, nearest_neighbor_graph
from crystal_data.graphs.compat import reference_padded_neighbors


def test_full_neighbourhoods_need_no_padding(sample_store):
    import crystal_data

    sample = crystal_data.open(sample_store)[3]
    idx, dist = reference_padded_neighbors(sample.edge_index, sample.edge_distance, sample.num_nodes)
    assert idx.shape == (sample.num_nodes, 12)
    np.testing.assert_array_equal(np.sort(dist.ravel()), np.sort(sample.edge_distance))
    assert (dist <= 8.0).all()


def test_short_neighbourhoods_are_padded_like_the_reference():
    graph = nearest_neighbor_graph(np.eye(3) * 6.0, np.zeros((1, 3)), GraphConfig())  # 6 neighbours
    idx, dist = reference_padded_neighbors(graph.edge_index, graph.edge_distance, 1)
    np.testing.assert_array_equal(idx, np.zeros((1, 12)))
    np.testing.assert_allclose(dist[0], [6.0] * 6 + [9.0] * 6)


def test_isolated_atoms_get_messages_from_atom_zero_as_in_the_reference():
    graph = nearest_neighbor_graph(np.eye(3) * 20.0, np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), GraphConfig())
    idx, dist = reference_padded_neighbors(graph.edge_index, graph.edge_distance, 2)
    assert (idx == 0).all() and (dist == 9.0).all()


def test_refuses_graphs_wider_than_the_slots():
    graph = nearest_neighbor_graph(np.eye(3) * 4.0, np.zeros((1, 3)), GraphConfig())
    with pytest.raises(ValueError, match="more than 4"):
        reference_padded_neighbors(graph.edge_index, graph.edge_distance, 1, max_neighbors=4)
