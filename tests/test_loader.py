"""The streaming loader: batches equal the store's crystals, the order is a pure function of (seed,
epoch), ranks x workers partition the items exactly, resumes are exact, teacher and line-graph arrays."""

from __future__ import annotations

import json
import shutil
import weakref
from collections import Counter

import numpy as np
import pytest
import torch
import zarr
from torch_geometric.data import Batch

import crystal_data
from crysgnn_models.loader import GraphLoader, GraphStream, MixedStream, write_node_array_shards
from crysgnn_models.loader import stream as stream_module
from crysgnn_models.loader.order import epoch_order
from crysgnn_models.loader.partition import rank_batches
from crystal_data.build import build_from_cif_folder
from crystal_data.sample import sample_dir
from crystal_data.schema import CRYSTAL_SYSTEMS
from crystal_data.store import layout
from crystal_data.torch_graphs import to_data
from tests.conftest import sample_settings

LABEL = "formation_energy_per_atom"
SHARD_SIZE = 16  # the 200 sample crystals in 13 shards (12 x 16 + 8)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("loader") / "sample16"
    build_from_cif_folder(sample_dir(), out, sample_settings(shard_size=SHARD_SIZE), progress=False)
    return out


@pytest.fixture(scope="module")
def store(store_path):
    return crystal_data.open(store_path)


@pytest.fixture(scope="module")
def labels(store):
    return store.records[LABEL].to_numpy().astype(np.float32)


def rows_of(batches) -> list[int]:
    return [int(i) for b in batches for i in b.index]


def check_against_store(batch, store, y=None):
    """Every crystal of ``batch`` equals ``store[row]``: atoms, edges (shifted by the crystal's node
    offset), distances, symmetry classes, target; ``batch``/``ptr`` agree with the atom counts."""
    samples = [store[int(i)] for i in batch.index]
    nodes = np.array([s.num_nodes for s in samples])
    edges = np.array([s.num_edges for s in samples])
    np.testing.assert_array_equal(batch.ptr.numpy(), np.concatenate([[0], np.cumsum(nodes)]))
    np.testing.assert_array_equal(batch.batch.numpy(), np.repeat(np.arange(len(samples)), nodes))
    assert batch.z.dtype == batch.edge_index.dtype == batch.batch.dtype == torch.int64
    assert batch.edge_distance.dtype == torch.float32 and batch.num_edges == edges.sum()
    e0 = 0
    for g, sample in enumerate(samples):
        n0 = int(batch.ptr[g])
        np.testing.assert_array_equal(batch.z[n0 : n0 + sample.num_nodes].numpy(), sample.atomic_numbers)
        edge_index = batch.edge_index[:, e0 : e0 + sample.num_edges].numpy()
        np.testing.assert_array_equal(edge_index - n0, sample.edge_index)
        np.testing.assert_array_equal(
            batch.edge_distance[e0 : e0 + sample.num_edges].numpy(), sample.edge_distance
        )
        assert int(batch.spacegroup[g]) == sample.spacegroup_number - 1
        assert int(batch.crystal_system[g]) == CRYSTAL_SYSTEMS.index(sample.crystal_system)
        if y is not None:
            np.testing.assert_equal(float(batch.y[g]), float(y[int(batch.index[g])]))
        e0 += sample.num_edges


def test_batches_equal_the_stores_crystals(store_path, store, labels):
    y = labels.copy()
    y[[3, 77]] = np.nan  # missing targets pass through as NaN
    stream = GraphStream(store_path, batch_size=37, buffer_shards=3, y=y)
    batches = list(stream)
    assert len(batches) == len(stream) == 6 and [b.num_graphs for b in batches] == [37] * 5 + [15]
    assert sorted(rows_of(batches)) == list(range(200))
    for batch in batches:
        check_against_store(batch, store, y)
        assert batch.teacher is None and batch.line_index is None
    assert sum(np.isnan(b.y.numpy()).sum() for b in batches) == 2


def test_pyg_batch_parity(store_path, store, labels):
    stream = GraphStream(store_path, batch_size=50, seed=3, y=labels)
    for batch in list(stream)[:2]:
        rows = batch.index.tolist()
        reference = Batch.from_data_list([to_data(store[i], float(labels[i])) for i in rows])
        ours = batch.to_pyg()
        for name in ("edge_index", "batch", "ptr", "edge_distance", "z", "y"):
            torch.testing.assert_close(ours[name], reference[name], rtol=0, atol=0)


def test_unshuffled_order_is_ascending_store_row(store_path):
    rows = np.array([150, 3, 99, 17, 42, 5, 180, 64])
    batches = list(GraphStream(store_path, rows, batch_size=3, shuffle=False, buffer_shards=2))
    assert rows_of(batches) == sorted(rows.tolist())


def test_order_follows_the_documented_recipe():
    """Shards [3, 2, 4] rows, every row once, windows of two shards: recomputed here step by step."""
    sizes, rows = np.array([3, 2, 4]), np.array([8, 0, 4, 2, 6, 1, 3, 7, 5])
    got = epoch_order(rows, sizes, seed=11, epoch=2, shuffle=True, buffer_shards=2)
    rng = np.random.default_rng(np.random.SeedSequence([11, 2]))
    visit = rng.permutation(3)
    by_shard = {0: [0, 1, 2], 1: [3, 4], 2: [5, 6, 7, 8]}  # store rows of each shard
    position = {int(r): i for i, r in enumerate(rows)}
    expected, shards = [], []
    for window in (visit[:2], visit[2:]):
        items = np.array([position[r] for k in window for r in by_shard[int(k)]])
        expected += items[rng.permutation(len(items))].tolist()
        shards.append(window.tolist())
    assert got.order.tolist() == expected
    assert [s.tolist() for s in got.shards] == shards
    assert got.bounds.tolist() == [0, sum(len(by_shard[int(k)]) for k in visit[:2]), 9]


def test_order_is_a_function_of_seed_and_epoch_only(store_path):
    sizes = np.array([SHARD_SIZE] * 12 + [8])
    rows = np.random.default_rng(0).choice(200, size=120, replace=False)

    def order(seed, epoch, buffer_shards=3, rows=rows):
        return epoch_order(rows, sizes, seed=seed, epoch=epoch, shuffle=True, buffer_shards=buffer_shards)

    a = order(5, 1)
    assert np.array_equal(a.order, order(5, 1).order)
    assert sorted(a.order.tolist()) == list(range(120))
    for other in (order(6, 1), order(5, 2), order(5, 1, buffer_shards=4)):
        assert not np.array_equal(a.order, other.order)
    shard_of = rows // SHARD_SIZE
    for w, shards in enumerate(a.shards):  # a window's items come from its shards only
        assert len(shards) == (3 if w < len(a.shards) - 1 else 13 - 3 * (len(a.shards) - 1))
        assert set(shard_of[a.order[a.bounds[w] : a.bounds[w + 1]]]) == set(shards.tolist())
    # Streams agree with the function, whoever asks (another instance, another epoch then back).
    stream = GraphStream(store_path, rows, batch_size=8, seed=5, buffer_shards=3)
    stream.set_epoch(1)
    assert np.array_equal(stream.epoch_order().order, a.order)


CASES = [  # (items, batch size, world size, workers, drop_last)
    (200, 16, 1, 2, False),
    (200, 16, 3, 2, False),
    (200, 16, 3, 0, True),
    (61, 7, 4, 2, False),
    (61, 7, 4, 3, True),
    (50, 16, 4, 0, False),
    (2, 4, 4, 0, False),
    (1, 5, 3, 2, False),
    (10, 3, 2, 0, True),
]


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")
@pytest.mark.parametrize("n, batch_size, world, workers, drop_last", CASES)
def test_ranks_and_workers_partition_the_items(store_path, n, batch_size, world, workers, drop_last):
    rows = np.random.default_rng(n).choice(200, size=n, replace=False)
    yielded, counts = Counter(), []
    for rank in range(world):
        kw = dict(batch_size=batch_size, world_size=world, rank=rank, drop_last=drop_last, buffer_shards=2)
        stream = GraphStream(store_path, rows, seed=1, **kw)
        batches = list(GraphLoader(stream, num_workers=workers))
        single = list(GraphStream(store_path, rows, seed=1, **kw))
        assert [b.index.tolist() for b in batches] == [b.index.tolist() for b in single]  # same order
        assert all(0 < b.num_graphs <= batch_size for b in batches)
        if drop_last:
            assert all(b.num_graphs == batch_size for b in batches)
        counts += [len(batches), len(stream)]
        yielded.update(rows_of(batches))
    assert len(set(counts)) == 1  # every rank yields len(stream) batches
    order = rows[stream.epoch_order().order]
    expected = Counter(order[: n - stream.dropped].tolist())
    expected.update(order[np.arange(stream.padded) % n].tolist())
    assert yielded == expected
    step = batch_size * world
    assert stream.dropped == (n % step if drop_last else 0)
    assert stream.padded == (0 if drop_last or n % step == 0 or n % step >= world else world - n % step)


def test_drop_last_and_padding_counts():
    assert rank_batches(200, 16, 3, 0, drop_last=True).dropped == 8  # 4 steps of 48, 8 left
    last = [rank_batches(50, 16, 4, r, drop_last=False) for r in range(4)]
    assert [int(b.stops[-1] - b.starts[-1]) for b in last] == [13, 13, 12, 12]
    pads = [rank_batches(2, 4, 4, r, drop_last=False) for r in range(4)]
    assert [(int(b.starts[0]), b.padded) for b in pads] == [(0, 2), (1, 2), (0, 2), (1, 2)]
    assert len(rank_batches(0, 4, 2, 1, drop_last=False)) == 0


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_yields_exactly_the_remaining_batches(store_path, labels, workers):
    def loader():
        stream = GraphStream(store_path, batch_size=12, seed=7, buffer_shards=2, y=labels)
        return GraphLoader(stream, num_workers=workers)

    full = loader()
    full.set_epoch(1)
    expected = list(full)
    assert full.epoch == 2 and full.step == 0  # an exhausted epoch moves on
    first = loader()
    first.set_epoch(1)
    taken = []
    for batch in first:
        taken.append(batch)
        if len(taken) == 5:
            break
    state = first.state_dict()
    assert state["epoch"] == 1 and state["step"] == 5 and state["seed"] == 7
    resumed = loader()
    resumed.load_state_dict(json.loads(json.dumps(state)))
    resumed.set_epoch(1)  # already there: keeps its position
    rest = list(resumed)
    assert len(taken) + len(rest) == len(expected) == 17
    for ours, theirs in zip(taken + rest, expected):
        assert torch.equal(ours.index, theirs.index) and torch.equal(ours.z, theirs.z)
        assert torch.equal(ours.edge_index, theirs.edge_index)
        assert torch.equal(ours.edge_distance, theirs.edge_distance) and torch.equal(ours.y, theirs.y)


def test_resume_does_not_read_skipped_windows(store_path, monkeypatch):
    loaded = []
    real = stream_module.load_window

    def counting(source, shards, num_shards):
        loaded.append(tuple(int(k) for k in shards))
        return real(source, shards, num_shards)

    monkeypatch.setattr(stream_module, "load_window", counting)
    stream = GraphStream(store_path, batch_size=16, shuffle=False, buffer_shards=2)
    loader = GraphLoader(stream)
    loader.load_state_dict({**loader.state_dict(), "step": 6})  # items 96.. = shards 6.. = windows 3..
    assert rows_of(loader)[0] == 96
    assert loaded == [(6, 7), (8, 9), (10, 11), (12,)]


def test_state_for_another_order_is_refused(store_path):
    loader = GraphLoader(GraphStream(store_path, batch_size=12))
    state = loader.state_dict()
    assert set(state) >= {"seed", "epoch", "step", "batch_size", "world_size", "buffer_shards"}
    other = GraphLoader(GraphStream(store_path, np.arange(100), batch_size=12))
    with pytest.raises(ValueError, match="order_digest"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="batch_size"):
        GraphLoader(GraphStream(store_path, batch_size=13)).load_state_dict(state)
    loader.load_state_dict({**state, "epoch": 4, "step": 3})
    loader.set_epoch(4)
    assert (loader.epoch, loader.step) == (4, 3)
    loader.set_epoch(5)
    assert (loader.epoch, loader.step) == (5, 0)


def test_at_most_two_windows_are_held(store_path, monkeypatch):
    alive = []
    real = stream_module.load_window

    def tracked(source, shards, num_shards):
        window = real(source, shards, num_shards)
        alive.append(weakref.ref(window))
        return window

    monkeypatch.setattr(stream_module, "load_window", tracked)
    held = [
        sum(ref() is not None for ref in alive)
        for _ in GraphStream(store_path, batch_size=20, buffer_shards=2)
    ]
    assert len(alive) == 7 and max(held) == 2 and min(held) == 1


def test_teacher_embeddings_are_gathered_by_node(store_path, store, tmp_path):
    arrays = {}
    for k in range(len(store.manifest["shards"])):
        data = store.shard(k, cache=False)
        rows = np.repeat(np.arange(len(data)) + SHARD_SIZE * k, np.diff(data.node_ptr))
        local = np.arange(len(data.atomic_numbers)) - data.node_ptr[:-1].repeat(np.diff(data.node_ptr))
        values = np.stack([rows, local, data.atomic_numbers], axis=1)
        arrays[k] = values.astype(np.float16 if k == 0 else np.float32)  # float16 is read as float32
    write_node_array_shards(tmp_path / "teacher", store, arrays)
    batches = list(GraphStream(store_path, batch_size=64, teacher=tmp_path / "teacher"))
    for batch in batches:
        teacher = batch.teacher.numpy()
        assert batch.teacher.dtype == torch.float32 and teacher.shape == (batch.num_nodes, 3)
        np.testing.assert_array_equal(teacher[:, 0], batch.index[batch.batch].numpy())
        np.testing.assert_array_equal(
            teacher[:, 1], np.arange(batch.num_nodes) - batch.ptr[batch.batch].numpy()
        )
        np.testing.assert_array_equal(teacher[:, 2], batch.z.numpy())
    with pytest.raises(ValueError, match="rows for"):
        write_node_array_shards(tmp_path / "bad", store, {0: arrays[1]})


ALIGNN_HASH = "alignn0test00"


@pytest.fixture(scope="module")
def alignn_store(store_path, tmp_path_factory):
    """A copy of the store with a hand-made ``alignn``-kind graphs folder: the core arrays plus
    ``edge_vector`` = (crystal row, local edge, distance), and line pairs (e1, e2) linking each edge to
    the first edge leaving the atom it points at, with ``line_cos`` = e1 + e2 / 1000 (crystal-local)."""
    out = tmp_path_factory.mktemp("alignn") / "store"
    shutil.copytree(store_path, out)
    manifest = json.loads((out / layout.MANIFEST).read_text())
    (knn,) = manifest["graphs"]
    manifest["graphs"][ALIGNN_HASH] = {**manifest["graphs"][knn], "kind": "alignn"}
    (out / layout.MANIFEST).write_text(json.dumps(manifest))
    expected = {}
    for k, shard in enumerate(manifest["shards"]):
        source = zarr.open_group(out / layout.GRAPHS_DIR / knn / f"{shard['name']}.zarr", mode="r")
        arrays = {name: source[name][...] for name in ("atomic_numbers", "node_ptr", "edge_ptr")}
        arrays |= {name: source[name][...] for name in ("edge_index", "edge_distance")}
        vectors, pairs, cosines, line_ptr = [], [], [], [0]
        for g in range(len(arrays["node_ptr"]) - 1):
            e0, e1 = arrays["edge_ptr"][g : g + 2]
            src, dst = arrays["edge_index"][:, e0:e1]
            local = np.arange(e1 - e0)
            vectors.append(
                np.stack([np.full(e1 - e0, SHARD_SIZE * k + g), local, arrays["edge_distance"][e0:e1]], 1)
            )
            leaving = {
                int(s): int(e) for e, s in reversed(list(enumerate(src)))
            }  # first edge out of each atom
            line = np.array([(e, leaving[int(d)]) for e, d in enumerate(dst) if int(d) in leaving]).reshape(
                -1, 2
            )
            pairs.append(line.T)
            cosines.append(line[:, 0] + line[:, 1] / 1000)
            line_ptr.append(line_ptr[-1] + len(line))
            expected[SHARD_SIZE * k + g] = (vectors[-1], line.T, cosines[-1])
        arrays["edge_vector"] = np.concatenate(vectors).astype(np.float32)
        arrays["line_index"] = np.concatenate(pairs, axis=1).astype(np.int32)
        arrays["line_cos"] = np.concatenate(cosines).astype(np.float32)
        arrays["line_ptr"] = np.array(line_ptr, dtype=np.int64)
        group = zarr.open_group(out / layout.GRAPHS_DIR / ALIGNN_HASH / f"{shard['name']}.zarr", mode="w")
        for name, data in arrays.items():
            group.create_array(name, data=data)
    return out, expected


def test_alignn_kind_adds_line_graph_arrays(alignn_store, store):
    path, expected = alignn_store
    for batch in GraphStream(path, batch_size=45, graphs=ALIGNN_HASH, buffer_shards=2):
        check_against_store(batch, store)
        assert batch.edge_vector.shape == (batch.num_edges, 3) and batch.line_index.dtype == torch.int64
        edges = torch.bincount(batch.batch[batch.edge_index[1]], minlength=batch.num_graphs)
        edge_ptr = np.concatenate([[0], np.cumsum(edges.numpy())])
        t0 = 0
        for g, row in enumerate(batch.index.tolist()):
            vectors, line, cosines = expected[row]
            np.testing.assert_array_equal(batch.edge_vector[edge_ptr[g] : edge_ptr[g + 1]].numpy(), vectors)
            t1 = t0 + line.shape[1]
            np.testing.assert_array_equal(batch.line_index[:, t0:t1].numpy() - edge_ptr[g], line)
            np.testing.assert_allclose(batch.line_cos[t0:t1].numpy(), cosines, rtol=1e-6)
            t0 = t1
        assert t0 == batch.line_cos.numel()
        # batch-wide: e1 ends at the atom e2 starts from
        assert torch.equal(batch.edge_index[1, batch.line_index[0]], batch.edge_index[0, batch.line_index[1]])


def test_from_dataset(store_path, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(store_path, copy)
    train = crystal_data.load(copy, split="train", target=LABEL)
    stream = GraphStream.from_dataset(train, batch_size=64, shuffle=False)
    batches = list(stream)
    assert rows_of(batches) == sorted(train.rows.tolist())
    y_by_row = dict(zip(train.rows.tolist(), train.y.astype(np.float32).tolist()))
    assert [float(v) for b in batches for v in b.y] == [y_by_row[r] for r in rows_of(batches)]


# ------------------------------------------------------------------------------------- MixedStream
def mixed(store_path, labels, seed=5, **kwargs) -> MixedStream:
    """Even rows (batches of 12) and odd rows from the 20th on, as two streams."""
    evens, odds = np.arange(0, 200, 2), np.arange(21, 200, 2)
    parts = [
        GraphStream(store_path, rows, batch_size=12, buffer_shards=2, y=labels[rows], **kwargs)
        for rows in (evens, odds)
    ]
    return MixedStream(parts, seed=seed)


def test_mixed_stream_interleaves_each_streams_own_batches(store_path, labels):
    stream = mixed(store_path, labels)
    assert len(stream) == 9 + 8  # ceil(100 / 12) + ceil(90 / 12)
    stream.set_epoch(3)
    batches = list(stream)
    labels_of = stream.labels()
    assert sorted(labels_of.tolist()) == [0] * 9 + [1] * 8
    assert labels_of.tolist() != sorted(labels_of.tolist())  # shuffled: not one stream after the other
    for k in (0, 1):  # each stream's batches, in its own order, exactly as the stream alone yields them
        alone = mixed(store_path, labels).streams[k]
        alone.set_epoch(3)
        ours = [b for b, label in zip(batches, labels_of) if label == k]
        for a, b in zip(ours, alone, strict=True):
            assert torch.equal(a.index, b.index) and torch.equal(a.edge_index, b.edge_index)
            assert torch.equal(a.y, b.y)
    rows = rows_of(batches)
    assert sorted(rows) == sorted([*range(0, 200, 2), *range(21, 200, 2)])  # every crystal once
    again = mixed(store_path, labels)
    again.set_epoch(3)
    assert rows_of(again) == rows  # a function of (seed, epoch)
    again.set_epoch(4)
    assert rows_of(again) != rows
    unshuffled = mixed(store_path, labels, shuffle=False)
    assert unshuffled.labels().tolist() == [0] * 9 + [1] * 8


@pytest.mark.parametrize("workers", [0, 2])
def test_mixed_stream_resumes_mid_epoch(store_path, labels, workers):
    full = GraphLoader(mixed(store_path, labels), num_workers=workers)
    full.set_epoch(2)
    expected = rows_of(full)
    first = GraphLoader(mixed(store_path, labels), num_workers=workers)
    first.set_epoch(2)
    taken = []
    for batch in first:
        taken.append(batch)
        if len(taken) == 7:
            break
    resumed = GraphLoader(mixed(store_path, labels, seed=0), num_workers=workers)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))  # restores seed 5 everywhere
    assert [s.seed for s in resumed.stream.streams] == [5, 5]
    assert rows_of(taken) + rows_of(resumed) == expected


def test_mixed_stream_refuses_streams_that_do_not_fit(store_path):
    with pytest.raises(ValueError, match="share batch_size"):
        MixedStream([GraphStream(store_path, batch_size=12), GraphStream(store_path, batch_size=8)])


def test_array_declarations_agree_with_the_store_layout():
    from crysgnn_models.loader.arrays import CGCNN_ARRAYS, EXTRA_ARRAYS_BY_KIND, POINTERS

    assert {a.name for a in CGCNN_ARRAYS} | {POINTERS["node"], POINTERS["edge"]} <= set(layout.GRAPH_ARRAYS)
    assert set(EXTRA_ARRAYS_BY_KIND) == set(layout.EXTRA_GRAPH_ARRAYS)
    for kind, arrays in EXTRA_ARRAYS_BY_KIND.items():
        read = {a.name for a in arrays} | {POINTERS[a.segment] for a in arrays if a.segment == "line"}
        assert read == set(layout.EXTRA_GRAPH_ARRAYS[kind]), kind
