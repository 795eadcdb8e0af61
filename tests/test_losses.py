"""The pretraining losses against direct computations: loops over crystals, pairs and atoms the way
method.md §3-§4 describes the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import crystal_data
from crysgnn_models.models.crysgnn import CrysGNN, CrysGNNConfig
from crysgnn_models.models.reference import pad_like_reference
from crysgnn_models.nn.pair_blocks import padded_size, pair_layout
from crysgnn_models.pretrain.losses import (
    CRYSAE_WEIGHTS,
    PretrainObjective,
    adjacency_loss,
    feature_loss,
    mask_atoms,
    nt_xent_loss,
    pretrain_loss,
    spacegroup_loss,
)
from tests.test_models import make_batch, sparse_crystal

WEIGHTS = torch.tensor([0.1, 1.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)


@pytest.fixture(scope="module")
def samples(sample_store):
    store = crystal_data.open(sample_store)
    picked = [store[i] for i in (58, 0, 7, 120, 33, 91)]  # 58 is 1-atom fcc Cu (mp-30)
    assert sorted({len(s.atomic_numbers) for s in picked}) == sorted(len(s.atomic_numbers) for s in picked)
    return picked


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CrysGNN().double()


def direct_adjacency(edge_index: np.ndarray, n: int) -> np.ndarray:
    """A[i][j]: how many of i's neighbour slots hold j, counted one slot at a time, capped at 5."""
    a = np.zeros((n, n), dtype=np.int64)
    for j, i in edge_index.T:
        if a[i, j] <= 4:
            a[i, j] += 1
    return a


def direct_pair_sums(model, nodes, crystals, ptr, rows=None, scale=None):
    """The reference decoder looped over crystals and pairs: fc1(fc_adj(h_i, h_j)), log-softmax,
    weighted NLL. ``rows[g]``: the centre atoms kept of crystal g (all by default); ``scale[g]`` multiplies
    its pairs. Returns (sum w_y * nll, sum w_y)."""
    numerator = denominator = 0.0
    for g, crystal in enumerate(crystals):
        n = len(crystal.atomic_numbers)
        h = nodes[int(ptr[g]) : int(ptr[g]) + n]
        target = direct_adjacency(crystal.edge_index, n)
        kept = range(n) if rows is None else rows[g]
        s = 1.0 if scale is None else scale[g]
        for i in kept:
            for j in range(n):
                logp = F.log_softmax(model.fc1(model.fc_adj(h[i : i + 1], h[j : j + 1]))[0], dim=0)
                y = int(target[i, j])
                numerator += s * float(WEIGHTS[y] * -logp[y])
                denominator += s * float(WEIGHTS[y])
    return numerator, denominator


def test_adjacency_target_is_the_capped_slot_count(samples):
    cu = samples[0]
    assert len(cu.atomic_numbers) == 1 and cu.num_edges == 12
    layout = pair_layout(torch.tensor([0, 1]))
    (counts,) = layout.edge_counts(torch.from_numpy(cu.edge_index.astype(np.int64)))
    assert counts.tolist() == [[[5]]]  # 12 self-edges, capped at 5

    batch = make_batch(samples)
    layout = pair_layout(batch.ptr)
    blocks = layout.edge_counts(batch.edge_index)
    for g, crystal in enumerate(samples):
        n = len(crystal.atomic_numbers)
        block = next(k for k, b in enumerate(layout.blocks) if bool((b.cols == batch.ptr[g]).any()))
        member = int(torch.nonzero(layout.blocks[block].cols[:, 0] == batch.ptr[g]).item())
        got = blocks[block][member].numpy()
        np.testing.assert_array_equal(got[:n, :n], direct_adjacency(crystal.edge_index, n))
        assert got[n:].sum() == 0 and got[:, n:].sum() == 0  # nothing on padding


def test_padded_sizes_and_blocks(samples):
    assert padded_size(torch.tensor([1, 2, 3, 5, 7, 9, 13, 17, 25, 33, 100])).tolist() == [
        1, 2, 3, 6, 8, 12, 16, 24, 32, 48, 128
    ]  # fmt: skip
    batch = make_batch(samples)
    layout = pair_layout(batch.ptr)
    sizes = batch.ptr.diff()
    assert sum(b.rows.shape[0] for b in layout.blocks) == len(samples)
    real = sum(int(b.valid(batch.num_nodes).sum()) for b in layout.blocks)
    assert real == int((sizes * sizes).sum())  # every ordered pair once, padding excluded


def test_adjacency_loss_equals_the_per_crystal_loop(model, samples):
    crystals = [*samples, sparse_crystal()]
    batch = make_batch(crystals)
    with torch.no_grad():
        nodes, _ = model.encode(batch)
        loss = adjacency_loss(model, nodes, batch.edge_index, batch.ptr, pair_budget=None)
        within = adjacency_loss(model, nodes, batch.edge_index, batch.ptr, pair_budget=200 * 200)
        numerator, denominator = direct_pair_sums(model, nodes, crystals, batch.ptr)
    assert math.isclose(float(loss), numerator / denominator, rel_tol=1e-10)
    assert float(within) == float(loss)  # a budget no crystal exceeds changes nothing


def test_adjacency_loss_counts_reference_padding_in_compat_mode(model):
    crystal = sparse_crystal()
    padded = pad_like_reference(make_batch([crystal]))
    (counts,) = pair_layout(padded.ptr).edge_counts(padded.edge_index)
    plain = direct_adjacency(crystal.edge_index, 3)
    missing = 12 - np.bincount(crystal.edge_index[1], minlength=3)
    expected = plain.copy()
    expected[:, 0] = np.minimum(plain[:, 0] + missing, 5)  # padding slots point at atom 0 (bug B1)
    np.testing.assert_array_equal(counts[0, :3, :3].numpy(), expected)


def test_pair_budget_samples_rows_and_reweights(model, samples):
    crystals = samples[1:4]
    batch = make_batch(crystals)
    sizes = batch.ptr.diff().tolist()
    budget = sorted(sizes)[1] ** 2  # the largest crystal is sampled, the two others are exact
    big = int(np.argmax(sizes))
    layout = pair_layout(batch.ptr, budget, torch.Generator().manual_seed(5))
    slots = layout.row_slot[batch.ptr[big] : batch.ptr[big + 1]]
    kept = budget // sizes[big]
    assert sorted(slots[slots >= 0].tolist()) == list(range(kept))  # r distinct rows, each slot once
    rows = [None] * len(crystals)
    rows[big] = torch.nonzero(slots >= 0).squeeze(1).tolist()
    scale = [1.0] * len(crystals)
    scale[big] = sizes[big] / kept
    with torch.no_grad():
        nodes, _ = model.encode(batch)
        sampled = adjacency_loss(
            model, nodes, batch.edge_index, batch.ptr, budget, torch.Generator().manual_seed(5)
        )
        exact = adjacency_loss(model, nodes, batch.edge_index, batch.ptr, None)
        rows = [r if r is not None else range(n) for r, n in zip(rows, sizes)]
        numerator, denominator = direct_pair_sums(model, nodes, crystals, batch.ptr, rows, scale)
        assert math.isclose(float(sampled), numerator / denominator, rel_tol=1e-10)

        # the estimator's mean over draws is close to the exact loss (ratio estimator: nearly unbiased)
        gen = torch.Generator().manual_seed(0)
        draws = torch.stack(
            [adjacency_loss(model, nodes, batch.edge_index, batch.ptr, budget, gen) for _ in range(300)]
        )
    assert float(draws.std()) > 0  # the sampled crystal does vary
    assert abs(float(draws.mean()) - float(exact)) < 4 * float(draws.std()) / math.sqrt(300) + 1e-3


def test_feature_loss_equals_a_per_bit_loop(model, samples):
    batch = make_batch(samples[:3])
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(batch.num_nodes, 92, generator=gen, dtype=torch.float64)
    features = model.encoder.atom_features(batch.z)
    mask = torch.zeros(batch.num_nodes, dtype=torch.bool)
    mask[[0, 3, 5]] = True

    def direct(rows):
        total = 0.0
        for i in rows:
            for k in range(92):
                p = 1 / (1 + math.exp(-float(logits[i, k])))
                x = float(features[i, k])
                total -= x * math.log(p) + (1 - x) * math.log(1 - p)
        return total / (len(rows) * 92)

    assert math.isclose(float(feature_loss(logits, features)), direct(range(batch.num_nodes)), rel_tol=1e-9)
    assert math.isclose(float(feature_loss(logits, features, mask)), direct([0, 3, 5]), rel_tol=1e-9)


def test_spacegroup_loss_ignores_unknown_labels():
    logits = torch.randn(4, 230, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    labels = torch.tensor([0, 229, -1, 12])
    direct = [
        -(float(logits[g, y]) - math.log(sum(math.exp(float(v)) for v in logits[g])))
        for g, y in enumerate(labels.tolist())
        if y >= 0
    ]
    assert math.isclose(float(spacegroup_loss(logits, labels)), sum(direct) / 3, rel_tol=1e-10)
    empty = spacegroup_loss(logits.requires_grad_(), torch.full((4,), -1))
    empty.backward()
    assert empty.item() == 0.0 and float(logits.grad.abs().sum()) == 0.0


def direct_nt_xent(z: torch.Tensor, labels: list[int], tau: float) -> float:
    """PyTorch Metric Learning's NTXentLoss written out: a loop over ordered positive pairs."""

    def sim(a, b):
        return float(F.cosine_similarity(z[a], z[b], dim=0)) / tau

    losses = []
    for a, ya in enumerate(labels):
        for p, yp in enumerate(labels):
            if a == p or ya < 0 or yp != ya:
                continue
            negatives = sum(math.exp(sim(a, n)) for n, yn in enumerate(labels) if yn >= 0 and yn != ya)
            losses.append(-math.log(math.exp(sim(a, p)) / (math.exp(sim(a, p)) + negatives)))
    return sum(losses) / len(losses)


def test_nt_xent_equals_the_direct_formula():
    z = torch.randn(7, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    labels = [6, 6, 2, -1, 2, 6, 4]  # class 4 is alone: an anchor of no pair, a negative of the others
    got = nt_xent_loss(z, torch.tensor(labels), temperature=0.07)
    assert math.isclose(float(got), direct_nt_xent(z, labels, 0.07), rel_tol=1e-9)
    assert math.isclose(
        float(nt_xent_loss(z, torch.tensor(labels), 0.5)), direct_nt_xent(z, labels, 0.5), rel_tol=1e-9
    )


def test_nt_xent_without_positives_or_negatives():
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64).requires_grad_()
    none = nt_xent_loss(z, torch.tensor([0, 1, 2, -1]))
    none.backward()
    assert none.item() == 0.0 and torch.equal(z.grad, torch.zeros_like(z))
    z.grad = None
    alike = nt_xent_loss(z, torch.tensor([3, 3, 3, 3]))  # positives but no negatives: each term is 0
    alike.backward()
    assert alike.item() == 0.0 and bool(torch.isfinite(z.grad).all())


def test_pretrain_loss_weights_and_terms(samples):
    torch.manual_seed(7)
    model = CrysGNN()
    batch = make_batch(samples)
    out = pretrain_loss(model, batch, generator=torch.Generator().manual_seed(0))
    assert set(out.terms) == {"adjacency", "features", "spacegroup", "contrastive"}
    assert math.isclose(out.total.item(), 0.25 * sum(float(v) for v in out.terms.values()), rel_tol=1e-6)
    assert all(not v.requires_grad for v in out.terms.values())

    weights = {"adjacency": 2.0, "features": 0.0, "spacegroup": 1.0, "contrastive": 0.0}
    partial = pretrain_loss(model, batch, weights)
    assert set(partial.terms) == {"adjacency", "spacegroup"}
    expected = 2.0 * out.terms["adjacency"] + out.terms["spacegroup"]
    assert math.isclose(partial.total.item(), float(expected), rel_tol=1e-6)
    with pytest.raises(ValueError, match="unknown loss weights"):
        pretrain_loss(model, batch, {"connectivity": 1.0})


def test_crysae_is_a_crysgnn_configuration_with_node_losses(samples):
    torch.manual_seed(8)
    model = CrysGNN(CrysGNNConfig.crysae())
    assert model.fc_sg is None and len(model.encoder.convs) == 3
    batch = make_batch(samples)
    out = pretrain_loss(model, batch, CRYSAE_WEIGHTS)
    assert set(out.terms) == {"adjacency", "features"}
    out.total.backward()
    assert all(p.grad is not None for p in model.parameters())
    nodes, graphs = model.encode(batch)
    assert not torch.allclose(nodes.norm(dim=1), torch.ones(batch.num_nodes))  # not normalised
    with pytest.raises(ValueError, match="spacegroup_head"):
        pretrain_loss(model, batch)


def test_masked_feature_prediction(samples):
    torch.manual_seed(9)
    model = CrysGNN().eval()
    batch = make_batch(samples)
    mask = mask_atoms(batch.num_nodes, 0.15, torch.Generator().manual_seed(3))
    assert int(mask.sum()) == round(0.15 * batch.num_nodes)
    weights = {"features": 1.0}
    with torch.no_grad():
        got = pretrain_loss(
            model, batch, weights, mask_ratio=0.15, generator=torch.Generator().manual_seed(3)
        )
        nodes, _ = model.encode(batch, mask)
        target = model.encoder.atom_features(batch.z)
        expected = F.binary_cross_entropy_with_logits(model.fc_atom_feature(nodes)[mask], target[mask])
        unmasked_nodes, _ = model.encode(batch)
    assert math.isclose(float(got.total), float(expected), rel_tol=1e-6)
    changed = (nodes - unmasked_nodes).abs().sum(dim=1) > 0
    assert bool(changed[mask].all())  # masked atoms lost their own features


def test_objective_module_is_deterministic_given_its_seed(samples):
    torch.manual_seed(10)
    model = CrysGNN().eval()
    batch = make_batch(samples)
    kwargs = dict(mask_ratio=0.3, pair_budget=16, seed=11)
    with torch.no_grad():
        a = PretrainObjective(model, **kwargs)(batch)
        b = PretrainObjective(model, **kwargs)(batch)
        c = PretrainObjective(model, **{**kwargs, "seed": 12})(batch)
    assert torch.equal(a.total, b.total) and not torch.equal(a.total, c.total)
