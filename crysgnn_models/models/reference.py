"""The released reference checkpoint (method.md §12): its padded neighbour lists and its state dict.

The reference pads every atom with fewer than 12 neighbours within 8 Å up to 12 slots pointing at
atom 0 of the same crystal at 9 Å, and those slots act as real messages (method.md §1.2, §11 B1).
Stores hold no padding; :func:`pad_like_reference` adds exactly those edges to a batch so the reference
weights see the inputs they were trained on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from crysgnn_models.loader.batch import GraphBatch

if TYPE_CHECKING:
    from crysgnn_models.models.crysgnn import CrysGNN

_ENCODER_KEY = re.compile(r"^(embedding|convs)\.")


def pad_like_reference(batch: GraphBatch, max_neighbors: int = 12, cutoff: float = 8.0) -> GraphBatch:
    """``batch`` with ``max_neighbors - d`` extra edges into every atom of in-degree ``d < max_neighbors``,
    each from atom 0 of the atom's crystal at distance ``cutoff + 1``. Appended after the stored edges;
    line-graph fields (``edge_vector``, ``line_index``, ``line_cos``) are dropped, as padding has no
    geometry. A batch that needs no padding is returned as is."""
    target = batch.edge_index[1]
    in_degree = torch.bincount(target, minlength=batch.num_nodes)
    if bool((in_degree > max_neighbors).any()):
        raise ValueError(f"an atom has more than {max_neighbors} incoming edges: not a reference-style graph")
    missing = max_neighbors - in_degree
    if not bool(missing.any()):
        return batch
    centres = torch.repeat_interleave(torch.arange(batch.num_nodes, device=target.device), missing)
    sources = batch.ptr[batch.batch[centres]]
    edge_index = torch.cat([batch.edge_index, torch.stack([sources, centres]).to(batch.edge_index.dtype)], 1)
    padding = torch.full(
        (centres.numel(),), cutoff + 1.0, dtype=batch.edge_distance.dtype, device=target.device
    )
    return replace(
        batch,
        edge_index=edge_index,
        edge_distance=torch.cat([batch.edge_distance, padding]),
        edge_vector=None,
        line_index=None,
        line_cos=None,
    )


def reference_to_ours(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a reference CrysGNN state dict to :class:`~crysgnn_models.models.crysgnn.CrysGNN`'s keys:
    ``module.`` prefixes (DataParallel) dropped, ``embedding.*`` / ``convs.*`` moved under ``encoder.``;
    the decoders (``fc_adj``, ``fc1``, ``fc_atom_feature``, ``fc_sg``) keep their names."""
    mapped = {}
    for key, value in state_dict.items():
        while key.startswith("module."):
            key = key[len("module.") :]
        mapped[_ENCODER_KEY.sub(r"encoder.\1.", key)] = value
    return mapped


def load_reference_state_dict(
    model: CrysGNN, state_dict_or_path: Mapping[str, torch.Tensor] | str | Path
) -> CrysGNN:
    """Load the released reference checkpoint (a path, loaded with ``weights_only=True`` on the CPU, or
    an already loaded ``{'state_dict': ...}`` or bare state dict) into ``model``, checking every key and
    shape first. Missing ``num_batches_tracked`` counters (older PyTorch) are tolerated.

    For the reference's own embeddings, build the model with ``CrysGNNConfig(compat=True)`` or pad the
    inputs with :func:`pad_like_reference`. Returns ``model``."""
    raw = state_dict_or_path
    if isinstance(raw, (str, Path)):
        raw = torch.load(raw, map_location="cpu", weights_only=True)
    if not isinstance(raw, Mapping):
        raise TypeError(f"expected a state dict or {{'state_dict': ...}}, got {type(raw).__name__}")
    if "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        raw = raw["state_dict"]
    state = reference_to_ours(raw)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: checkpoint {tuple(v.shape)}, model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if wrong:
        problems.append(f"wrong shapes {wrong}")
    if problems:
        raise ValueError(
            "not a reference CrysGNN checkpoint for this model (model config "
            f"{model.config.to_dict()}): " + "; ".join(problems)
        )
    model.load_state_dict({**expected, **state})
    return model
