"""GATGNN and ALIGNN students: layer formulas against direct loops, batching invariances, gradients."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import pytest
import torch

from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.models.alignn import ALIGNN
from crysgnn_models.models.gatgnn import GATGNN
from crysgnn_models.nn.agat_conv import AGATConv
from crysgnn_models.nn.composition import composition_fractions
from crysgnn_models.nn.composition_attention import CompositionAttention
from crysgnn_models.nn.edge_gated_conv import EdgeGatedGraphConv
from crysgnn_models.nn.rbf import RBFExpansion

BOX = 4.0


@dataclass
class Crystal:
    """A hand-made crystal: atoms and directed bonds (source, target, displacement source -> target)."""

    z: list[int]
    bonds: list[tuple[int, int, torch.Tensor]]


def random_crystal(gen: torch.Generator, num_atoms: int, num_bonds: int) -> Crystal:
    """Random positions in a cubic cell; each bond to a random periodic image, stored in both directions
    (as ALIGNN's featurizer does), so self-images and repeated pairs occur as in the real multigraph."""
    z = torch.randint(1, 101, (num_atoms,), generator=gen).tolist()
    pos = torch.rand(num_atoms, 3, generator=gen, dtype=torch.float64) * BOX
    bonds = []
    for _ in range(num_bonds):
        a, b = torch.randint(0, num_atoms, (2,), generator=gen).tolist()
        image = torch.randint(-1, 2, (3,), generator=gen).double()
        if a == b and not image.any():
            image[0] = 1.0
        vector = pos[b] + BOX * image - pos[a]
        bonds += [(a, b, vector), (b, a, -vector)]
    return Crystal(z, bonds)


def collate(crystals: list[Crystal], line_graph: bool = False) -> GraphBatch:
    """Concatenate crystals into a GraphBatch; the line graph and its cosines by a direct double loop."""
    z, edges, vectors, batch, ptr, pairs, cosines = [], [], [], [], [0], [], []
    for g, crystal in enumerate(crystals):
        node_offset, edge_offset = ptr[-1], len(edges)
        z += crystal.z
        batch += [g] * len(crystal.z)
        ptr.append(node_offset + len(crystal.z))
        edges += [(s + node_offset, t + node_offset) for s, t, _ in crystal.bonds]
        vectors += [v for _, _, v in crystal.bonds]
        for e1, (_, end, v1) in enumerate(crystal.bonds):
            for e2, (start, _, v2) in enumerate(crystal.bonds):
                if end == start:
                    pairs.append((e1 + edge_offset, e2 + edge_offset))
                    cosines.append(float(torch.dot(-v1, v2) / (v1.norm() * v2.norm())))
    vector = torch.stack(vectors).float()
    num_graphs = len(crystals)
    out = GraphBatch(
        z=torch.tensor(z),
        edge_index=torch.tensor(edges).T.contiguous(),
        edge_distance=vector.norm(dim=1),
        batch=torch.tensor(batch),
        ptr=torch.tensor(ptr),
        index=torch.arange(num_graphs),
        spacegroup=torch.full((num_graphs,), -1),
        crystal_system=torch.full((num_graphs,), -1),
    )
    if line_graph:
        out.edge_vector = vector
        out.line_index = torch.tensor(pairs).T.contiguous()
        out.line_cos = torch.tensor(cosines)
    return out


@pytest.fixture(scope="module")
def crystals() -> list[Crystal]:
    gen = torch.Generator().manual_seed(0)
    return [random_crystal(gen, 1, 3), random_crystal(gen, 4, 6), random_crystal(gen, 6, 10)]


def small_alignn() -> ALIGNN:
    return ALIGNN(hidden=32, embedding=16, num_alignn_layers=2, num_gcn_layers=2)


MODELS = {"gatgnn": (GATGNN, False), "alignn": (small_alignn, True)}


def randomise_batchnorm(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Non-trivial running statistics, so that eval-mode BatchNorm is not the identity."""
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm1d):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen) * 0.3)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
            bn.weight.data.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
            bn.bias.data.copy_(torch.randn(bn.num_features, generator=gen) * 0.1)


def bn_eval(bn: torch.nn.BatchNorm1d, v: torch.Tensor) -> torch.Tensor:
    return (v - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias


def test_rbf_expansion_centres_and_width():
    rbf = RBFExpansion(0.0, 8.0, 80)
    spacing = 8.0 / 79
    out = rbf(torch.tensor([5 * spacing, 0.0]))
    assert out.shape == (2, 80)
    # γ = 1 / spacing, so one centre away the value is exp(-spacing).
    assert out[0, 5].item() == pytest.approx(1.0)
    assert out[0, 6].item() == pytest.approx(math.exp(-spacing), rel=1e-5)
    assert out[1, 2].item() == pytest.approx(math.exp(-4 * spacing), rel=1e-5)
    assert RBFExpansion(-1.0, 1.0, 40)(torch.tensor([1.0]))[0, -1].item() == pytest.approx(1.0)


def test_composition_fractions_match_a_direct_count():
    z = torch.tensor([8, 8, 22, 1, 103, 26, 8, 26, 26])
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    comp = composition_fractions(z, batch, num_graphs=4)
    assert comp.shape == (4, 103)
    for g in range(3):
        counts = Counter(z[batch == g].tolist())
        expected = torch.zeros(103)
        for element, count in counts.items():
            expected[element - 1] = count / sum(counts.values())
        torch.testing.assert_close(comp[g], expected)
    assert comp[3].abs().sum() == 0  # a crystal without atoms in the batch: all zeros, no NaN


def random_graph(gen: torch.Generator, num_nodes: int, num_edges: int) -> torch.Tensor:
    """A multigraph with self-loops and repeated pairs; node ``num_nodes - 1`` has no incoming edge."""
    src = torch.randint(0, num_nodes, (num_edges,), generator=gen)
    dst = torch.randint(0, num_nodes - 1, (num_edges,), generator=gen)
    return torch.stack([src, dst])


def test_agat_attention_sums_to_one_over_incoming_edges():
    gen = torch.Generator().manual_seed(1)
    conv = AGATConv(channels=8, edge_dim=5, heads=3)
    edge_index = random_graph(gen, 7, 30)
    alpha = conv.attention(torch.randn(7, 8, generator=gen), edge_index, torch.randn(30, 5, generator=gen))
    assert alpha.shape == (30, 3)
    assert (alpha > 0).all()
    for i in range(6):
        incoming = edge_index[1] == i
        if incoming.any():
            torch.testing.assert_close(alpha[incoming].sum(dim=0), torch.ones(3))


def test_agat_conv_matches_a_per_edge_loop():
    gen = torch.Generator().manual_seed(2)
    channels, edge_dim, heads, num_nodes = 3, 2, 2, 5
    conv = AGATConv(channels, edge_dim, heads).eval()
    randomise_batchnorm(conv, gen)
    conv.bias.data.copy_(torch.randn(channels, generator=gen))
    x, edge_index = torch.randn(num_nodes, channels, generator=gen), random_graph(gen, num_nodes, 12)
    edge_attr = torch.randn(12, edge_dim, generator=gen)
    softplus = torch.nn.functional.softplus
    expected = conv.bias.detach().repeat(num_nodes, 1)
    with torch.no_grad():
        out = conv(x, edge_index, edge_attr)
        for i in range(num_nodes):
            incoming = [k for k in range(12) if edge_index[1, k] == i]
            if not incoming:
                continue
            total = torch.zeros(channels)
            for h in range(heads):
                w = conv.weight[:, h * channels : (h + 1) * channels]
                scores, values = [], []
                for k in incoming:
                    j = edge_index[0, k]
                    xi = softplus(torch.cat([x[i], edge_attr[k]]) @ w)
                    xj = softplus(torch.cat([x[j], edge_attr[k]]) @ w)
                    logit = softplus(torch.dot(torch.cat([xi, xj]), conv.att[h]))
                    bn = conv.bn_heads
                    normed = (logit - bn.running_mean[h]) / torch.sqrt(bn.running_var[h] + bn.eps)
                    scores.append(softplus(normed * bn.weight[h] + bn.bias[h]))
                    values.append(xj)
                weights = torch.softmax(torch.stack(scores), dim=0)
                total += sum(wt * v for wt, v in zip(weights, values))
            expected[i] += total / heads
    torch.testing.assert_close(out, expected)


def test_edge_gated_conv_matches_a_per_node_loop():
    gen = torch.Generator().manual_seed(3)
    channels, num_nodes, num_edges = 4, 5, 11
    conv = EdgeGatedGraphConv(channels).eval()
    randomise_batchnorm(conv, gen)
    x, edge_index = torch.randn(num_nodes, channels, generator=gen), random_graph(gen, num_nodes, num_edges)
    e = torch.randn(num_edges, channels, generator=gen)
    silu = torch.nn.functional.silu
    with torch.no_grad():
        x_out, e_out = conv(x, edge_index, e)
        for i in range(num_nodes):
            numerator, denominator = torch.zeros(channels), torch.zeros(channels)
            for k in range(num_edges):
                j = int(edge_index[0, k])
                if int(edge_index[1, k]) != i:
                    continue
                m = conv.src_gate(x[j]) + conv.dst_gate(x[i]) + conv.edge_gate(e[k])
                numerator += torch.sigmoid(m) * conv.dst_update(x[j])
                denominator += torch.sigmoid(m)
                expected_edge = e[k] + silu(bn_eval(conv.bn_edges, m))
                torch.testing.assert_close(e_out[k], expected_edge)
            update = conv.src_update(x[i]) + numerator / (denominator + 1e-6)
            torch.testing.assert_close(x_out[i], x[i] + silu(bn_eval(conv.bn_nodes, update)))


def test_edge_gated_conv_without_edge_update_returns_edges_unchanged():
    conv = EdgeGatedGraphConv(4, update_edges=False)
    e = torch.randn(3, 4)
    _, e_out = conv(torch.randn(2, 4), torch.tensor([[0, 1, 1], [1, 0, 1]]), e)
    assert e_out is e
    assert conv.bn_edges is None


def test_composition_attention_is_a_softmax_per_crystal():
    gen = torch.Generator().manual_seed(4)
    batch = torch.tensor([0, 0, 0, 1, 2, 2])
    comp = composition_fractions(torch.tensor([8, 8, 22, 1, 26, 8]), batch, 3)
    weights = CompositionAttention(channels=8)(torch.randn(6, 8, generator=gen), batch, comp)
    assert weights.shape == (6, 1)
    torch.testing.assert_close(torch.zeros(3).index_add(0, batch, weights[:, 0]), torch.ones(3))
    assert weights[3].item() == pytest.approx(1.0)


@pytest.mark.parametrize("name", MODELS)
def test_output_shapes(name, crystals):
    factory, line_graph = MODELS[name]
    batch = collate(crystals, line_graph)
    out = factory()(batch)
    assert out.prediction.shape == (3,)
    assert out.nodes.shape == (batch.num_nodes, 64)
    assert torch.isfinite(out.prediction).all() and torch.isfinite(out.nodes).all()


def test_alignn_default_size_shapes_and_parameter_count(crystals):
    model = ALIGNN()
    assert sum(p.numel() for p in model.parameters()) == 4_025_729 + 16_448
    batch = collate(crystals[1:], line_graph=True)
    out = model(batch)
    assert out.prediction.shape == (2,) and out.nodes.shape == (batch.num_nodes, 64)


def test_gatgnn_default_parameter_count():
    assert sum(p.numel() for p in GATGNN().parameters()) == 122_874


def test_alignn_requires_the_line_graph(crystals):
    with pytest.raises(ValueError, match="line_cos"):
        small_alignn()(collate(crystals))


def trained_model(name: str) -> torch.nn.Module:
    """A model whose BatchNorm running statistics have moved off their initial values."""
    torch.manual_seed(5)
    factory, _ = MODELS[name]
    model = factory()
    randomise_batchnorm(model, torch.Generator().manual_seed(6))
    return model.eval()


@pytest.mark.parametrize("name", MODELS)
def test_prediction_does_not_depend_on_the_rest_of_the_batch(name, crystals):
    _, line_graph = MODELS[name]
    model = trained_model(name)
    with torch.no_grad():
        alone = model(collate([crystals[1]], line_graph))
        together = model(collate([crystals[2], crystals[1], crystals[0]], line_graph))
    torch.testing.assert_close(together.prediction[1], alone.prediction[0])
    start = len(crystals[2].z)
    torch.testing.assert_close(together.nodes[start : start + len(crystals[1].z)], alone.nodes)


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", MODELS)
def test_permuting_crystals_permutes_predictions(name, mode, crystals):
    _, line_graph = MODELS[name]
    model = trained_model(name).train(mode == "train")
    order = [2, 0, 1]
    with torch.no_grad():
        straight = model(collate(crystals, line_graph))
        permuted = model(collate([crystals[k] for k in order], line_graph))
    torch.testing.assert_close(permuted.prediction, straight.prediction[order], atol=1e-4, rtol=1e-4)
    sizes = [len(c.z) for c in crystals]
    blocks = straight.nodes.split(sizes)
    torch.testing.assert_close(permuted.nodes, torch.cat([blocks[k] for k in order]), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name, crystals):
    _, line_graph = MODELS[name]
    # Eval mode: with batch statistics, a bias feeding straight into a BatchNorm has an exactly
    # cancelling gradient, which would hide whether it is wired in.
    model = trained_model(name)
    out = model(collate(crystals, line_graph))
    (out.prediction.square().sum() + out.nodes.square().sum()).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert param.grad.abs().sum() > 0, param_name
