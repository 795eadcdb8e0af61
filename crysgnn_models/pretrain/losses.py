"""The four CrysGNN pretraining losses (method.md §3-§4), vectorised over the batch.

- ``adjacency``: every ordered atom pair (i, j) of each crystal is a 6-class problem, class = number of
  edges j -> i capped at 5, logits ``fc1(fc_adj(h_i, h_j))``, NLL weighted [0.1, 1, 1, 1, 1, 1] with
  PyTorch's weighted-mean reduction over all pairs of the batch. Pairs are scored block by block
  (:mod:`crysgnn_models.nn.pair_blocks`); crystals with more than ``pair_budget`` pairs are row-sampled.
- ``features``: BCE-with-logits of ``fc_atom_feature(h_i)`` against the 92 CGCNN bits, mean over atoms
  x 92; with ``mask_ratio > 0`` only over the masked atoms, whose input features were zeroed.
- ``spacegroup``: NLL of ``fc_sg(z_G)`` over 230 classes, crystals labelled -1 ignored.
- ``contrastive``: supervised NT-Xent over ``z_G`` with crystal-system labels (cosine, τ = 0.07).

The total is the weighted sum; a term with weight 0 is not computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.models.crysgnn import NUM_ADJACENCY_CLASSES, CrysGNN
from crysgnn_models.nn.pair_blocks import pair_layout

LOSS_NAMES = ("adjacency", "features", "spacegroup", "contrastive")
DEFAULT_WEIGHTS: dict[str, float] = {name: 0.25 for name in LOSS_NAMES}
"""The reference's fixed equal weights (method.md §4)."""
CRYSAE_WEIGHTS: dict[str, float] = {"adjacency": 0.9, "features": 0.1, "spacegroup": 0.0, "contrastive": 0.0}
"""CrysAE's node-only objective (method.md §9.1). CrysAE averages per-crystal losses; here the
adjacency term is the batch-wide weighted mean like CrysGNN's."""
ADJACENCY_CLASS_WEIGHTS = (0.1, 1.0, 1.0, 1.0, 1.0, 1.0)
DEFAULT_PAIR_BUDGET = 128 * 128
"""Pairs kept per crystal: crystals of up to 128 atoms are scored exactly."""
TEMPERATURE = 0.07


class PretrainLoss(NamedTuple):
    """``total``: the weighted sum (with gradient); ``terms``: each computed term, detached, for logging."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


def adjacency_loss(
    model: CrysGNN,
    nodes: torch.Tensor,
    edge_index: torch.Tensor,
    ptr: torch.Tensor,
    pair_budget: int | None = DEFAULT_PAIR_BUDGET,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Connectivity reconstruction over all ordered pairs of each crystal (method.md §3).

    ``nodes`` (N, D): the encoder's node embeddings; ``edge_index`` the graph they were computed on.
    With every crystal within ``pair_budget`` pairs, the value is exactly
    ``sum w_y * nll / sum w_y`` over every pair of the batch. Otherwise a crystal of n atoms keeps
    r = budget // n of its rows (centre atoms, uniform without replacement, from ``generator``) and
    each kept pair counts n / r times in both sums: the numerator and denominator are unbiased
    (Horvitz-Thompson) estimates of the exact ones, so the loss is their ratio estimate, consistent
    and nearly unbiased (exact value above whenever no crystal exceeds the budget).
    """
    layout = pair_layout(ptr, pair_budget, generator)
    # sums in at least float32, also under autocast: a batch has ~10^5 pairs
    dtype = torch.promote_types(nodes.dtype, torch.float32)
    class_weights = torch.tensor(ADJACENCY_CLASS_WEIGHTS, dtype=dtype, device=nodes.device)
    padded = torch.cat([nodes, nodes.new_zeros(1, nodes.shape[1])])
    num_nodes = nodes.shape[0]
    numerator = torch.zeros((), dtype=dtype, device=nodes.device)
    denominator = torch.zeros((), dtype=dtype, device=nodes.device)
    for block, target in zip(layout.blocks, layout.edge_counts(edge_index, NUM_ADJACENCY_CLASSES - 1)):
        logits = model.adjacency_logits(padded[block.rows], padded[block.cols])
        nll = F.cross_entropy(logits, target, reduction="none")
        weight = class_weights[target] * block.valid(num_nodes) * block.scale.to(dtype).view(-1, 1, 1)
        numerator = numerator + (weight * nll).sum()
        denominator = denominator + weight.sum()
    return numerator / denominator.clamp(min=torch.finfo(dtype).tiny)


def feature_loss(
    logits: torch.Tensor, features: torch.Tensor, node_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """BCE-with-logits of ``logits`` (N, 92) against the 0/1 ``features`` (N, 92), mean over every entry,
    or over the rows of ``node_mask`` (N,) bool only."""
    if node_mask is not None:
        logits, features = logits[node_mask], features[node_mask]
    return F.binary_cross_entropy_with_logits(logits, features)


def spacegroup_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean NLL of ``logits`` (G, 230) over the crystals whose label (G,) is not -1; 0 (with gradient)
    when none has one."""
    known = labels >= 0
    if not bool(known.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[known], labels[known])


def nt_xent_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = TEMPERATURE
) -> torch.Tensor:
    """Supervised NT-Xent (``pytorch_metric_learning.losses.NTXentLoss`` semantics, method.md §4).

    s = cosine similarity / τ. Every ordered pair (a, p), a ≠ p, with the same label is a positive; the
    negatives of a are the crystals with another label; other positives are not in the denominator:
    ``l(a, p) = -log(exp(s_ap) / (exp(s_ap) + sum_n exp(s_an)))``, averaged over positive pairs.
    Crystals labelled -1 take no part; 0 (with gradient) when there is no positive pair."""
    known = labels >= 0
    embeddings, labels = embeddings[known], labels[known]
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    positive = same & ~torch.eye(labels.numel(), dtype=torch.bool, device=labels.device)
    if not bool(positive.any()):
        return embeddings.sum() * 0.0
    unit = F.normalize(embeddings, dim=1)
    similarity = unit @ unit.t() / temperature
    negatives = torch.logsumexp(similarity.masked_fill(same, float("-inf")), dim=1, keepdim=True)
    per_pair = torch.logaddexp(similarity, negatives) - similarity
    return per_pair[positive].mean()


def mask_atoms(
    num_nodes: int, ratio: float, generator: torch.Generator | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """(N,) bool: ``round(ratio * N)`` atoms (at least one) drawn uniformly without replacement."""
    count = min(num_nodes, max(1, round(ratio * num_nodes)))
    mask = torch.zeros(num_nodes, dtype=torch.bool)
    mask[torch.randperm(num_nodes, generator=generator)[:count]] = True
    return mask.to(device)


def check_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """The four weights by name (:data:`LOSS_NAMES`); names left out weigh 0, ``None`` gives 0.25 each."""
    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    unknown = sorted(set(weights) - set(LOSS_NAMES))
    if unknown:
        raise ValueError(f"unknown loss weights {unknown}; known: {list(LOSS_NAMES)}")
    return {name: float(weights.get(name, 0.0)) for name in LOSS_NAMES}


def pretrain_loss(
    model: CrysGNN,
    batch: GraphBatch,
    weights: Mapping[str, float] | None = None,
    *,
    mask_ratio: float = 0.0,
    pair_budget: int | None = DEFAULT_PAIR_BUDGET,
    temperature: float = TEMPERATURE,
    generator: torch.Generator | None = None,
) -> PretrainLoss:
    """The weighted pretraining loss of ``model`` on ``batch`` and its terms.

    ``mask_ratio > 0`` (and a feature weight): that fraction of atoms gets all-zero input features for
    this forward pass (which every term shares) and the feature term covers only them. ``generator``
    draws the masked atoms and the sampled pair rows (see :func:`adjacency_loss`)."""
    weights = check_weights(weights)
    if weights["spacegroup"] and model.fc_sg is None:
        raise ValueError("a space-group weight needs a model with config.spacegroup_head")
    batch = model.prepare(batch)
    node_mask = None
    if weights["features"] and mask_ratio > 0:
        node_mask = mask_atoms(batch.num_nodes, mask_ratio, generator, batch.z.device)
    nodes, graphs = model.encode(batch, node_mask)

    terms: dict[str, torch.Tensor] = {}
    if weights["adjacency"]:
        terms["adjacency"] = adjacency_loss(model, nodes, batch.edge_index, batch.ptr, pair_budget, generator)
    if weights["features"]:
        target = model.encoder.atom_features(batch.z)
        terms["features"] = feature_loss(model.fc_atom_feature(nodes), target, node_mask)
    if weights["spacegroup"]:
        terms["spacegroup"] = spacegroup_loss(model.fc_sg(graphs), batch.spacegroup)
    if weights["contrastive"]:
        terms["contrastive"] = nt_xent_loss(graphs, batch.crystal_system, temperature)
    if not terms:
        raise ValueError("every loss weight is 0")
    total = sum(weights[name] * value for name, value in terms.items())
    return PretrainLoss(total, {name: value.detach() for name, value in terms.items()})


class PretrainObjective(nn.Module):
    """:func:`pretrain_loss` as a module around ``model`` (what ``DistributedDataParallel`` wraps):
    ``objective(batch) -> PretrainLoss(total, terms)``. ``seed`` seeds the CPU generator that draws
    masked atoms and sampled pair rows."""

    def __init__(
        self,
        model: CrysGNN,
        weights: Mapping[str, float] | None = None,
        *,
        mask_ratio: float = 0.0,
        pair_budget: int | None = DEFAULT_PAIR_BUDGET,
        temperature: float = TEMPERATURE,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model = model
        self.weights = check_weights(weights)
        self.mask_ratio = mask_ratio
        self.pair_budget = pair_budget
        self.temperature = temperature
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, batch: GraphBatch) -> PretrainLoss:
        return pretrain_loss(
            self.model,
            batch,
            self.weights,
            mask_ratio=self.mask_ratio,
            pair_budget=self.pair_budget,
            temperature=self.temperature,
            generator=self.generator,
        )
