"""CrysGNN pretraining step throughput: our vectorised losses against a per-crystal loop of the same losses.

One step = CrysGNN forward (5 convolutions, 162,162 parameters), the four pretraining losses at 0.25
each, backward and an Adam step, on CPU. Both sides use the same encoder code, the same initial weights
and the same batches; they differ only in the losses:

- **ours**: :func:`crysgnn_models.pretrain.losses.pretrain_loss`: pair logits per padded size block
  (batched products, ``fc1`` folded into the bilinear form), the adjacency target counted from
  ``edge_index`` with one ``bincount`` inside the step, pooling with ``index_add``. Run exact
  (``pair_budget=None``: every pair, as the loop) and, as a second row, with the default budget.
- **loop** (the reference's structure, method.md §3-§4): per crystal in Python, mean pooling of its
  rows, the feature decoder on its rows, and its n² pairs built with ``repeat_interleave`` / ``repeat``
  through ``fc_adj`` then ``fc1``; the logits concatenated into one weighted NLL. Its dense (n, n)
  adjacency targets are precomputed before timing, as the reference's dataset does. Space-group NLL and
  NT-Xent are the same vectorised functions on both sides (the reference uses a library for NT-Xent).
- **encoder only**: the shared forward and backward with a plain sum in place of the losses, the ceiling
  for any implementation of the losses.

Batches are ``--batch-size`` random crystals of one shard each (shards drawn at random among the first
``--shards``), cut from the shard's flat arrays with vectorised slicing, all built before timing. The
first loss of the first batch is compared between the two sides (relative difference printed). The
sides take turns batch by batch (so other load on a shared machine hits them alike); the first
``--warmup`` steps of each side are not timed; the table reports graphs/s over the timed steps and the
median step time.

    .venv/bin/python benchmarks/bench_pretrain_step.py --store /tmp/store-33k-b --batch-size 128 --steps 20
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from common import cpu_model, md_table, usable_cores

import crystal_data
from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.models.crysgnn import CrysGNN
from crysgnn_models.pretrain.losses import (
    ADJACENCY_CLASS_WEIGHTS,
    DEFAULT_PAIR_BUDGET,
    nt_xent_loss,
    pretrain_loss,
    spacegroup_loss,
)
from crystal_data.schema import CRYSTAL_SYSTEMS
from crystal_data.store.reader import GraphShard


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + l)`` for every (s, l), without a Python loop."""
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return offsets + np.arange(int(lengths.sum()))


def shard_batch(shard: GraphShard, rows: np.ndarray) -> GraphBatch:
    """The crystals ``rows`` of ``shard`` as one :class:`GraphBatch`."""
    n = shard.node_ptr[rows + 1] - shard.node_ptr[rows]
    e = shard.edge_ptr[rows + 1] - shard.edge_ptr[rows]
    nodes = _ranges(shard.node_ptr[rows], n)
    edges = _ranges(shard.edge_ptr[rows], e)
    ptr = np.concatenate([[0], np.cumsum(n)])
    edge_index = shard.edge_index[:, edges].astype(np.int64) + np.repeat(ptr[:-1], e)
    columns = shard.columns
    spacegroup = [(columns["spacegroup_number"][r] or 0) - 1 for r in rows]
    systems = [columns["crystal_system"][r] for r in rows]
    return GraphBatch(
        z=torch.from_numpy(shard.atomic_numbers[nodes].astype(np.int64)),
        edge_index=torch.from_numpy(edge_index),
        edge_distance=torch.from_numpy(shard.edge_distance[edges].astype(np.float32)),
        batch=torch.from_numpy(np.repeat(np.arange(len(rows)), n)),
        ptr=torch.from_numpy(ptr.astype(np.int64)),
        index=torch.from_numpy(rows.astype(np.int64)),
        spacegroup=torch.tensor(spacegroup),
        crystal_system=torch.tensor([CRYSTAL_SYSTEMS.index(s) if s else -1 for s in systems]),
    )


def dense_targets(batch: GraphBatch) -> list[torch.Tensor]:
    """Per crystal, the flattened (n * n) reference target A[i][j] = min(#edges j -> i, 5)."""
    targets = []
    for g in range(batch.num_graphs):
        start, stop = int(batch.ptr[g]), int(batch.ptr[g + 1])
        n = stop - start
        mine = (batch.edge_index[1] >= start) & (batch.edge_index[1] < stop)
        src, dst = batch.edge_index[0][mine] - start, batch.edge_index[1][mine] - start
        targets.append(torch.bincount(dst * n + src, minlength=n * n).clamp(max=5))
    return targets


def loop_loss(model: CrysGNN, batch: GraphBatch, targets: list[torch.Tensor]) -> torch.Tensor:
    """The same four losses with the decoders and pooling looped over crystals, as the reference does."""
    nodes, _ = model.encode(batch)
    features = model.encoder.atom_features(batch.z)
    pair_logits, feature_logits, pooled = [], [], []
    for g in range(batch.num_graphs):
        h = nodes[int(batch.ptr[g]) : int(batch.ptr[g + 1])]
        n = h.shape[0]
        pooled.append(h.mean(dim=0))
        feature_logits.append(model.fc_atom_feature(h))
        left, right = h.repeat_interleave(n, dim=0), h.repeat(n, 1)
        pair_logits.append(model.fc1(model.fc_adj(left, right)))
    weights = nodes.new_tensor(ADJACENCY_CLASS_WEIGHTS)
    adjacency = F.nll_loss(F.log_softmax(torch.cat(pair_logits), dim=1), torch.cat(targets), weight=weights)
    feature = F.binary_cross_entropy_with_logits(torch.cat(feature_logits), features)
    graphs = torch.stack(pooled)
    sg = spacegroup_loss(model.fc_sg(graphs), batch.spacegroup)
    contrastive = nt_xent_loss(graphs, batch.crystal_system)
    return 0.25 * (adjacency + feature + sg + contrastive)


def time_interleaved(
    sides: dict[str, Callable[[CrysGNN, int], torch.Tensor]],
    initial: CrysGNN,
    batches: list[GraphBatch],
    warmup: int,
) -> dict[str, tuple[float, float]]:
    """Per side, (graphs/s, median seconds per step) over the batches after the first ``warmup``. Each
    side trains its own copy of ``initial`` with Adam; the sides take turns batch by batch, so load from
    other processes on the machine falls on all of them alike."""
    models = {name: copy.deepcopy(initial).train() for name in sides}
    optimizers = {name: torch.optim.Adam(model.parameters(), lr=1e-3) for name, model in models.items()}
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for k in range(len(batches)):
        for name, loss_fn in sides.items():
            started = time.perf_counter()
            loss = loss_fn(models[name], k)
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[name].step()
            seconds[name].append(time.perf_counter() - started)
    graphs = sum(b.num_graphs for b in batches[warmup:])
    return {
        name: (graphs / sum(times[warmup:]), statistics.median(times[warmup:]))
        for name, times in seconds.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", required=True)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--threads", type=int, default=usable_cores(), help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    store = crystal_data.open(args.store)
    shards = [
        store.shard(k, cache=False) for k in range(min(args.shards, store.manifest["counts"]["shards"]))
    ]
    batches = []
    for _ in range(args.warmup + args.steps):
        shard = shards[rng.integers(len(shards))]
        rows = np.sort(rng.choice(len(shard), size=min(args.batch_size, len(shard)), replace=False))
        batches.append(shard_batch(shard, rows))
    targets = [dense_targets(b) for b in batches]

    torch.manual_seed(args.seed)
    initial = CrysGNN()
    with torch.no_grad():  # the same first loss on both sides (exact pairs)
        check = copy.deepcopy(initial)
        ours0 = float(pretrain_loss(check, batches[0], pair_budget=None).total)
        check = copy.deepcopy(initial)
        loop0 = float(loop_loss(check, batches[0], targets[0]))
    print(
        f"first-batch loss: ours {ours0:.6f}, loop {loop0:.6f}, "
        f"relative difference {abs(ours0 - loop0) / loop0:.1e}"
    )

    generator = torch.Generator().manual_seed(args.seed)
    sides = {
        "loop (per crystal)": lambda m, k: loop_loss(m, batches[k], targets[k]),
        "ours (exact)": lambda m, k: pretrain_loss(m, batches[k], pair_budget=None).total,
        f"ours (pair budget {DEFAULT_PAIR_BUDGET})": lambda m, k: (
            pretrain_loss(m, batches[k], pair_budget=DEFAULT_PAIR_BUDGET, generator=generator).total
        ),
        "encoder only (no losses)": lambda m, k: sum(part.sum() for part in m.encode(batches[k])),
    }
    results = time_interleaved(sides, initial, batches, args.warmup)

    base = results["loop (per crystal)"][0]
    nodes = sum(b.num_nodes for b in batches[args.warmup :]) / args.steps
    pairs = sum(int((b.ptr.diff() ** 2).sum()) for b in batches[args.warmup :]) / args.steps
    print(
        f"\n{args.store}: {args.steps} timed steps (+{args.warmup} warm-up) of {args.batch_size} crystals, "
        f"mean {nodes:.0f} atoms and {pairs:.0f} ordered pairs per batch; CPU {cpu_model()}, "
        f"torch {torch.__version__}, torch.set_num_threads({args.threads}), "
        f"Python {platform.python_version()}\n"
    )
    rows = [
        [name, f"{gps:.1f}", f"{median * 1e3:.0f}", f"{gps / base:.2f}x"]
        for name, (gps, median) in results.items()
    ]
    print(md_table(["losses", "graphs/s", "median step (ms)", "vs loop"], rows))


if __name__ == "__main__":
    main()
