"""CrysGNN, CGCNN, CrysXPP and the fine-tuned model: sizes, the reference checkpoint mapping and padding,
parity with an independent dense reimplementation of the reference forward, invariances, gradients."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import crystal_data
from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.models.cgcnn import CGCNN
from crysgnn_models.models.crysgnn import CrysGNN, CrysGNNConfig
from crysgnn_models.models.crysxpp import CrysXPP, load_encoder_convs
from crysgnn_models.models.finetune import FineTunedCrysGNN
from crysgnn_models.models.reference import load_reference_state_dict, pad_like_reference
from crysgnn_models.nn.gaussian import GaussianExpansion
from crysgnn_models.pretrain.losses import pretrain_loss
from crystal_data.graphs.atom_features import atom_feature_table
from crystal_data.graphs.compat import reference_padded_neighbors
from crystal_data.graphs.config import GraphConfig
from crystal_data.graphs.neighbors import nearest_neighbor_graph
from crystal_data.schema import CRYSTAL_SYSTEMS


@dataclass(frozen=True)
class Crystal:
    """The fields of a ``CrystalGraphSample`` that batching reads (for hand-made crystals)."""

    atomic_numbers: np.ndarray
    edge_index: np.ndarray
    edge_distance: np.ndarray
    spacegroup_number: int | None = None
    crystal_system: str | None = None


def make_batch(samples) -> GraphBatch:
    """A :class:`GraphBatch` of ``CrystalGraphSample``s (or :class:`Crystal`s), concatenated in order."""
    sizes = [len(s.atomic_numbers) for s in samples]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    return GraphBatch(
        z=torch.from_numpy(np.concatenate([s.atomic_numbers for s in samples]).astype(np.int64)),
        edge_index=torch.from_numpy(
            np.concatenate([s.edge_index.astype(np.int64) + start for s, start in zip(samples, starts)], 1)
        ),
        edge_distance=torch.from_numpy(np.concatenate([s.edge_distance for s in samples]).astype(np.float32)),
        batch=torch.repeat_interleave(torch.arange(len(samples)), torch.tensor(sizes)),
        ptr=torch.from_numpy(starts.astype(np.int64)),
        index=torch.arange(len(samples)),
        spacegroup=torch.tensor([(s.spacegroup_number or 0) - 1 for s in samples]),
        crystal_system=torch.tensor(
            [CRYSTAL_SYSTEMS.index(s.crystal_system) if s.crystal_system else -1 for s in samples]
        ),
    )


def sparse_crystal() -> Crystal:
    """Na-Cl-Na in a 9 x 9 x 7.5 Å cell: every atom has only 4-6 neighbours within 8 Å."""
    lattice = np.diag([9.0, 9.0, 7.5])
    frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.5, 0.5]])
    graph = nearest_neighbor_graph(lattice, frac, GraphConfig())
    return Crystal(
        np.array([11, 17, 11], np.uint8), graph.edge_index, graph.edge_distance, 47, "orthorhombic"
    )


@pytest.fixture(scope="module")
def samples(sample_store):
    store = crystal_data.open(sample_store)
    return [store[i] for i in (0, 58, 7, 120, 33)]  # 58 is 1-atom fcc Cu (mp-30)


def reference_shapes(n_conv: int = 5) -> dict[str, tuple[int, ...]]:
    """The released checkpoint's keys and shapes, as listed in method.md §12."""
    shapes = {"embedding.weight": (64, 92)}
    for k in range(n_conv):
        shapes[f"convs.{k}.fc_full.weight"] = (128, 169)
        shapes[f"convs.{k}.fc_full.bias"] = (128,)
        for bn, width in (("bn1", 128), ("bn2", 64)):
            for name in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"convs.{k}.{bn}.{name}"] = (width,)
            shapes[f"convs.{k}.{bn}.num_batches_tracked"] = ()
    shapes.update(
        {
            "fc_adj.weight": (6, 64, 64),
            "fc_adj.bias": (6,),
            "fc1.weight": (6, 6),
            "fc1.bias": (6,),
            "fc_atom_feature.weight": (92, 64),
            "fc_atom_feature.bias": (92,),
            "fc_sg.weight": (230, 64),
            "fc_sg.bias": (230,),
        }
    )
    return shapes


def random_reference_state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in reference_shapes().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith(("running_var", "bn1.weight", "bn2.weight")):  # positive scales
            state[key] = 0.5 + torch.rand(shape, generator=gen, dtype=torch.float64)
        else:
            fan_in = shape[-1] if len(shape) > 1 else 10
            state[key] = torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(fan_in)
    return state


def dense_reference_forward(state: dict[str, torch.Tensor], crystals, train: bool = False):
    """The reference forward, written independently from method.md §1-§2 in float64: fixed (N, 12)
    neighbour slots (padding: atom 0 at 9 Å), a dense (N, 12, 41) Gaussian tensor, the 169-wide
    concatenation per slot, BN1 over all N * 12 slot rows. Returns (nodes (N, 64), graphs (G, 64))."""
    table = torch.tensor(atom_feature_table(), dtype=torch.float64)
    idx, dist, atoms, crystal_atom_idx, offset = [], [], [], [], 0
    for c in crystals:
        n = len(c.atomic_numbers)
        nbr_idx, nbr_dist = reference_padded_neighbors(c.edge_index, c.edge_distance, n)
        idx.append(torch.from_numpy(nbr_idx) + offset)
        dist.append(torch.from_numpy(nbr_dist.astype(np.float64)))
        atoms.append(table[torch.from_numpy(c.atomic_numbers.astype(np.int64))])
        crystal_atom_idx.append(torch.arange(offset, offset + n))
        offset += n
    idx, dist, atom_fea = torch.cat(idx), torch.cat(dist), torch.cat(atoms)
    centres = torch.from_numpy(np.arange(0, 8 + 0.2, 0.2))
    gauss = torch.exp(-((dist[..., None] - centres) ** 2) / 0.2**2)

    def bn(x, prefix):
        if train:
            mean, var = x.mean(0), x.var(0, unbiased=False)
        else:
            mean, var = state[prefix + "running_mean"], state[prefix + "running_var"]
        return (x - mean) / torch.sqrt(var + 1e-5) * state[prefix + "weight"] + state[prefix + "bias"]

    x = atom_fea @ state["embedding.weight"].t()
    n, m = idx.shape
    for k in range(5):
        p = f"convs.{k}."
        total = torch.cat([x[:, None, :].expand(n, m, 64), x[idx], gauss], dim=2)
        gated = total @ state[p + "fc_full.weight"].t() + state[p + "fc_full.bias"]
        gated = bn(gated.view(n * m, 128), p + "bn1.").view(n, m, 128)
        gate, core = gated.chunk(2, dim=2)
        summed = (torch.sigmoid(gate) * F.softplus(core)).sum(dim=1)
        x = F.softplus(x + bn(summed, p + "bn2."))
    nodes = x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return nodes, torch.stack([nodes[i].mean(0) for i in crystal_atom_idx])


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_reference():
    model = CrysGNN()
    assert count(model) == 162_162  # method.md §2, the authors' "Teacher Model parameters" log line
    assert count(model.encoder.embedding) == 5_888 and count(model.encoder.convs[0]) == 22_144
    assert (count(model.fc_adj), count(model.fc1), count(model.fc_atom_feature)) == (24_582, 42, 5_980)
    assert count(model.fc_sg) == 14_950
    assert count(CGCNN()) == 80_833  # method.md §6.3; the student's embedding has a bias (5,952)
    assert count(CrysXPP()) == 80_833 + 92
    assert count(CrysGNN(CrysGNNConfig.crysae())) == 5_888 + 3 * 22_144 + 24_582 + 42 + 5_980


def test_gaussian_expansion_is_the_reference_one():
    expansion = GaussianExpansion()
    centres = np.arange(0, 8 + 0.2, 0.2)
    assert expansion.num_centres == 41 == len(centres)
    d = torch.tensor([0.0, 1.23, 7.9, 9.0])
    expected = np.exp(-((d.numpy()[:, None].astype(np.float64) - centres) ** 2) / 0.04)
    np.testing.assert_allclose(expansion(d).numpy(), expected, atol=1e-6)
    assert expansion(torch.tensor([9.0])).max() < 1e-10  # a padding slot is effectively zero
    np.testing.assert_allclose(expansion.centres(dtype=torch.float64).numpy(), centres, rtol=0, atol=1e-12)
    assert not expansion.state_dict()


def test_config_round_trip_and_unknown_fields():
    config = CrysGNNConfig.crysae(compat=True)
    assert CrysGNNConfig.from_dict(config.to_dict()) == config
    assert (config.n_conv, config.normalize, config.spacegroup_head) == (3, False, False)
    with pytest.raises(ValueError, match="n_convs"):
        CrysGNNConfig.from_dict({"n_convs": 5})


def test_pad_like_reference_adds_the_reference_slots(samples):
    crystals = [samples[0], sparse_crystal(), samples[1]]
    batch = make_batch(crystals)
    padded = pad_like_reference(batch)
    assert torch.equal(torch.bincount(padded.edge_index[1]), torch.full((batch.num_nodes,), 12))
    assert padded.num_edges == 12 * batch.num_nodes
    assert torch.equal(padded.edge_index[:, : batch.num_edges], batch.edge_index)
    start = int(batch.ptr[1])  # the sparse crystal's atoms are start .. start + 2
    extra = padded.edge_index[:, batch.num_edges :]
    assert bool((extra[0] == start).all()) and bool((padded.edge_distance[batch.num_edges :] == 9.0).all())
    nbr_idx, nbr_dist = reference_padded_neighbors(crystals[1].edge_index, crystals[1].edge_distance, 3)
    for atom in range(3):  # the same multiset of (neighbour, distance) slots as crystal_data's compat
        mine = padded.edge_index[1] == start + atom
        ours = sorted(zip((padded.edge_index[0][mine] - start).tolist(), padded.edge_distance[mine].tolist()))
        theirs = sorted(zip(nbr_idx[atom].tolist(), nbr_dist[atom].astype(np.float32).tolist()))
        assert ours == theirs
    assert pad_like_reference(padded) is padded  # idempotent


def test_load_reference_state_dict_maps_keys_and_checks_them(tmp_path):
    state = {k: v.float() if v.is_floating_point() else v for k, v in random_reference_state().items()}
    path = tmp_path / "crysgnn_state_checkpoint_v1.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model = load_reference_state_dict(CrysGNN(), path)
    ours = model.state_dict()
    assert torch.equal(ours["encoder.embedding.weight"], state["embedding.weight"])
    assert torch.equal(ours["encoder.convs.4.bn2.running_var"], state["convs.4.bn2.running_var"])
    assert torch.equal(ours["fc_adj.weight"], state["fc_adj.weight"])
    assert len(ours) == len(state)

    bare = dict(state)
    del bare["fc_sg.bias"]
    with pytest.raises(ValueError, match=r"missing keys \['fc_sg.bias'\]"):
        load_reference_state_dict(CrysGNN(), bare)
    with pytest.raises(ValueError, match="unexpected keys.*conv_to_fc.weight"):
        load_reference_state_dict(CrysGNN(), {**state, "conv_to_fc.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"encoder.embedding.weight: checkpoint \(64, 91\)"):
        load_reference_state_dict(CrysGNN(), {**state, "embedding.weight": torch.zeros(64, 91)})
    with pytest.raises(ValueError, match="missing keys"):  # a 3-conv checkpoint into a 5-conv model
        load_reference_state_dict(CrysGNN(), {k: v for k, v in state.items() if "convs.4" not in k})


@pytest.mark.parametrize("train", [False, True])
def test_compat_embeddings_equal_the_dense_reference(samples, train):
    crystals = [*samples, sparse_crystal()]
    state = random_reference_state(seed=3)
    # float64 on both sides, so that a mismatch is a difference of recipe, not of rounding
    model = load_reference_state_dict(CrysGNN(CrysGNNConfig(compat=True)).double(), state)
    model.train(train)
    with torch.no_grad():
        nodes, graphs = model.encode(make_batch(crystals))
    ref_nodes, ref_graphs = dense_reference_forward(state, crystals, train=train)
    np.testing.assert_allclose(nodes.numpy(), ref_nodes.numpy(), atol=1e-10)
    np.testing.assert_allclose(graphs.numpy(), ref_graphs.numpy(), atol=1e-10)
    np.testing.assert_allclose(nodes.norm(dim=1).numpy(), 1.0, atol=1e-12)

    if not train:  # without padding only the crystal that needed it changes (BN in eval: per atom)
        plain = load_reference_state_dict(CrysGNN().double(), state).eval()
        with torch.no_grad():
            plain_nodes, _ = plain.encode(make_batch(crystals))
        full = sum(len(c.atomic_numbers) for c in samples)
        torch.testing.assert_close(plain_nodes[:full], nodes[:full])
        assert (plain_nodes[full:] - nodes[full:]).abs().max() > 1e-3


def test_embeddings_do_not_depend_on_the_batch_in_eval_mode(samples):
    torch.manual_seed(0)
    model = CrysGNN().eval()
    student = CGCNN().eval()
    crystal = samples[3]
    with torch.no_grad():
        alone_nodes, alone_graph = model.encode(make_batch([crystal]))
        mixed_nodes, mixed_graphs = model.encode(make_batch([samples[0], crystal, samples[1]]))
        alone_pred = student(make_batch([crystal])).prediction
        mixed_pred = student(make_batch([samples[0], crystal, samples[1]])).prediction
    start = len(samples[0].atomic_numbers)
    torch.testing.assert_close(mixed_nodes[start : start + len(crystal.atomic_numbers)], alone_nodes)
    torch.testing.assert_close(mixed_graphs[1], alone_graph[0])
    torch.testing.assert_close(mixed_pred[1], alone_pred[0])


def test_atom_permutation_permutes_node_embeddings(samples):
    torch.manual_seed(1)
    model = CrysGNN().eval()
    crystal = samples[2]
    n = len(crystal.atomic_numbers)
    perm = np.random.default_rng(0).permutation(n)
    inverse = np.argsort(perm)  # new atom k is old atom perm[k]
    permuted = Crystal(
        crystal.atomic_numbers[perm], inverse[crystal.edge_index], crystal.edge_distance, 12, "monoclinic"
    )
    with torch.no_grad():
        nodes, graph = model.encode(make_batch([crystal]))
        permuted_nodes, permuted_graph = model.encode(make_batch([permuted]))
    torch.testing.assert_close(permuted_nodes, nodes[torch.from_numpy(perm)])
    torch.testing.assert_close(permuted_graph, graph)


def test_cgcnn_forward_is_the_cgcnn_recipe(samples):
    torch.manual_seed(2)
    model = CGCNN().eval()
    batch = make_batch(samples[:3])
    with torch.no_grad():
        out = model(batch)
        nodes = model.encoder(batch).raw
    assert out.prediction.shape == (3,) and out.nodes.shape == (batch.num_nodes, 64)
    torch.testing.assert_close(out.nodes, nodes)
    sizes = batch.ptr.diff().tolist()
    pooled = torch.stack([part.mean(0) for part in nodes.split(sizes)])
    expected = model.fc_out(F.softplus(model.conv_to_fc(F.softplus(pooled)))).squeeze(1)
    torch.testing.assert_close(out.prediction, expected)


def test_crysxpp_feature_selector(samples):
    torch.manual_seed(3)
    model = CrysXPP().eval()
    assert model.feature_selector.shape == (92,) and bool((model.feature_selector == 1).all())
    plain = CGCNN().eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k != "feature_selector"})
    batch = make_batch(samples[:3])
    with torch.no_grad():
        torch.testing.assert_close(model(batch).prediction, plain(batch).prediction)  # ones: no change
        model.feature_selector[:26] = 0.0  # drop group and period columns
        features = plain.encoder.atom_features(batch.z).clone()
        features[:, :26] = 0.0
        nodes = plain.encoder(batch, features).raw
    torch.testing.assert_close(model(batch).nodes, nodes)


def test_conv_weights_transfer_from_a_crysae(samples):
    torch.manual_seed(4)
    crysae = CrysGNN(CrysGNNConfig.crysae())
    for p in crysae.parameters():
        torch.nn.init.normal_(p)
    crysae.encoder.convs[2].bn1.running_mean.fill_(0.3)
    student = CrysXPP()
    embedding_before = student.encoder.embedding.weight.clone()
    copied = load_encoder_convs(student, crysae)
    assert len(copied) == 3 * 12  # per conv: fc_full 2, bn1 5, bn2 5
    source = crysae.encoder.convs.state_dict()
    for key, value in student.encoder.convs.state_dict().items():
        assert torch.equal(value, source[key]), key
    assert torch.equal(student.encoder.embedding.weight, embedding_before)  # the embedding is not copied

    reference_style = {f"module.{k.removeprefix('encoder.')}": v for k, v in crysae.state_dict().items()}
    other = CrysXPP()
    load_encoder_convs(other, reference_style)
    assert torch.equal(other.encoder.convs[1].fc_full.weight, crysae.encoder.convs[1].fc_full.weight)
    with pytest.raises(ValueError, match="5 convolutions, the student 3"):
        load_encoder_convs(CrysXPP(), CrysGNN())


def test_finetuned_model_starts_from_a_frozen_teacher(samples):
    torch.manual_seed(5)
    teacher = CrysGNN().eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    model = FineTunedCrysGNN.from_crysgnn(teacher)
    for key, value in teacher.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value), key
    assert all(p.requires_grad for p in model.parameters())
    assert count(model) == 5_888 + 5 * 22_144 + 64 * 128 + 128 + 129
    with torch.no_grad():
        model.encoder.embedding.weight.add_(1.0)
    assert not torch.equal(model.encoder.embedding.weight, teacher.encoder.embedding.weight)  # a copy

    from_state = FineTunedCrysGNN.from_crysgnn(teacher.state_dict(), teacher.config, pool_normalized=False)
    model = FineTunedCrysGNN.from_crysgnn(teacher).eval()
    batch = make_batch(samples[:3])
    with torch.no_grad():
        out = model(batch)
        teacher_nodes, teacher_graphs = teacher.encode(batch)
        from_state.eval()
        from_state.load_state_dict(model.state_dict())
        raw_pooled = from_state(batch).prediction
    torch.testing.assert_close(F.normalize(out.nodes, dim=1), teacher_nodes)
    head = model.fc_out(F.softplus(model.conv_to_fc(F.softplus(teacher_graphs)))).squeeze(1)
    torch.testing.assert_close(out.prediction, head)
    assert not torch.allclose(raw_pooled, out.prediction)  # the pooling ablation pools raw nodes


def test_gradients_reach_every_parameter(samples):
    torch.manual_seed(6)
    batch = make_batch(samples)
    model = CrysGNN()
    pretrain_loss(model, batch).total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    for student in (CGCNN(), CrysXPP(), FineTunedCrysGNN()):
        out = student(batch)
        (out.prediction.square().sum() + out.nodes.square().mean()).backward()
        for name, p in student.named_parameters():
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), (type(student).__name__, name)
