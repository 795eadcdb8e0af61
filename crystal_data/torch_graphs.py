"""PyTorch Geometric views of a :class:`~crystal_data.dataset.CrystalDataset` (this module imports
torch; ``crystal_data`` itself does not)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data

from crystal_data.graphs.atom_features import atom_feature_table
from crystal_data.store.reader import CrystalGraphSample


class CrystalData(Data):
    """A PyG ``Data`` whose ``line_index`` (pairs of edge numbers) is offset by the edges of the
    crystals before it when batched, not by their nodes."""

    def __inc__(self, key, value, *args, **kwargs):
        if key == "line_index":
            return self.edge_index.size(1)
        return super().__inc__(key, value, *args, **kwargs)


def to_data(sample: CrystalGraphSample, y: float | None) -> CrystalData:
    """One crystal as a PyG ``Data``: ``x`` (n, 92) CGCNN atom features, ``z`` (n,) atomic numbers,
    ``pos`` (n, 3) Cartesian Å, ``edge_index`` (2, E) source -> target, ``edge_distance`` (E,) Å,
    ``edge_image`` (E, 3) lattice translation of the source atom, ``lattice`` (1, 3, 3) rows are
    vectors, ``uid``, and ``y`` (1,) when there is a label. Batches stack ``lattice`` to (B, 3, 3)
    and ``y`` to (B,); an edge vector is ``pos[src] + edge_image @ lattice - pos[dst]``.

    ALIGNN graphs add ``edge_vector`` (E, 3) source -> target, ``line_index`` (2, T) pairs of edge
    numbers (edge e1 ends where e2 starts; offset by edges in batches) and ``line_cos`` (T,)."""
    z = sample.atomic_numbers.astype(np.int64)
    data = CrystalData(
        x=torch.from_numpy(atom_feature_table()[z]),
        z=torch.from_numpy(z),
        pos=torch.from_numpy((sample.frac_coords @ sample.lattice).astype(np.float32)),
        edge_index=torch.from_numpy(sample.edge_index.astype(np.int64)),
        edge_distance=torch.from_numpy(sample.edge_distance.astype(np.float32)),
        edge_image=torch.from_numpy(sample.edge_image.astype(np.int64)),
        lattice=torch.from_numpy(sample.lattice.astype(np.float32)).unsqueeze(0),
        uid=sample.uid,
    )
    if sample.line_index is not None:
        data.edge_vector = torch.from_numpy(sample.edge_vector.astype(np.float32))
        data.line_index = torch.from_numpy(sample.line_index.astype(np.int64))
        data.line_cos = torch.from_numpy(sample.line_cos.astype(np.float32))
    if y is not None:
        data.y = torch.tensor([y], dtype=torch.float32)
    return data


class TorchGraphs(Dataset):
    """A map-style torch ``Dataset`` of PyG ``Data``, read from the store item by item."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Data:
        graph, y = self.dataset[index]
        return to_data(graph, y)
