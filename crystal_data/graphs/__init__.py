"""Crystal multigraphs: the neighbour recipe, its configuration, and the atom feature table."""

from crystal_data.graphs.config import GraphConfig
from crystal_data.graphs.neighbors import CrystalGraph, nearest_neighbor_graph

__all__ = ["CrystalGraph", "GraphConfig", "nearest_neighbor_graph"]
