"""Train-step throughput of the students against a CGCNN student on the same crystals.

One train step = forward, loss, backward and optimizer step (AdamW at the student's own defaults, the
baseline's Adam at lr 3e-3), on CPU or ``--device cuda``, with the students at their paper sizes. The
loss is the distillation loss with α = 0.5: MSE of the prediction against the normalised target plus
MSE of the L2-normalised ``nodes`` against fixed random unit-norm stand-ins for precomputed teacher
embeddings, so the distillation branch (ALIGNN's 256 -> 64 projection) is part of every step.

Batches are consecutive crystals of one shard of ``--store``, cut from the shard's flat arrays by
:func:`knn_batches` (vectorised slicing). ALIGNN reads its own graph: ``crystal_data.graphs.alignn``
builds it (and its line graph) for each crystal of those batches from the records' lattice and
coordinates, before any timing. The baseline is a CGCNN student (``CGCNNEncoder`` with 3 convolutions,
embedding bias, mean pooling, softplus -> Linear(64, 128) -> softplus -> Linear(128, 1); 80,833
parameters like the reference) on the knn graph of the same crystals; the ratio is student graphs/s
over baseline graphs/s. The models take turns, one round at a time, so that load from other
processes falls on all of them alike: in each round every model takes two steps on the same batch and
only the second is timed (the first re-warms caches and the allocator after the other models, as
ALIGNN's steps allocate and free gigabytes). The first ``--warmup`` rounds are not timed.

    .venv/bin/python benchmarks/bench_students.py --store /tmp/store-33k-b --batch-size 64 --steps 20
    .venv/bin/python benchmarks/bench_students.py --store sample --model gatgnn   # the shipped 200 crystals
    .venv/bin/python benchmarks/bench_students.py --store STORE --shard 5 --batch-size 128 --device cuda
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import cpu_model, md_table, usable_cores
from torch import nn

import crystal_data
from crysgnn_models.loader.batch import GraphBatch
from crysgnn_models.models import alignn, gatgnn
from crysgnn_models.models.defaults import TrainingDefaults
from crysgnn_models.models.output import StudentOutput
from crysgnn_models.nn.encoder import CGCNNEncoder
from crysgnn_models.nn.pooling import mean_pool
from crystal_data.graphs.alignn import alignn_graph
from crystal_data.graphs.config import AlignnGraphConfig
from crystal_data.store.reader import GraphShard

ALPHA = 0.5
TEACHER_DIM = 64


class CGCNNBaseline(nn.Module):
    """The CGCNN student's shape (method.md §6.3) from the shared encoder, for the baseline only."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = CGCNNEncoder(n_conv=3, embedding_bias=True, normalize=False)
        self.head = nn.Sequential(nn.Softplus(), nn.Linear(64, 128), nn.Softplus(), nn.Linear(128, 1))

    def forward(self, batch: GraphBatch) -> StudentOutput:
        nodes = self.encoder(batch).raw
        return StudentOutput(self.head(mean_pool(nodes, batch.batch, batch.ptr)).squeeze(-1), nodes)


def knn_batches(shard: GraphShard, batch_size: int, count: int, target: np.ndarray) -> list[GraphBatch]:
    """``count`` batches of ``batch_size`` consecutive crystals of ``shard`` (its stored knn graphs)."""
    batches = []
    for k in range(min(count, len(shard) // batch_size)):
        g0, g1 = k * batch_size, (k + 1) * batch_size
        n0, n1 = shard.node_ptr[g0], shard.node_ptr[g1]
        e0, e1 = shard.edge_ptr[g0], shard.edge_ptr[g1]
        atoms = np.diff(shard.node_ptr[g0 : g1 + 1])
        edge_graph = np.repeat(np.arange(batch_size), np.diff(shard.edge_ptr[g0 : g1 + 1]))
        edge_index = shard.edge_index[:, e0:e1].astype(np.int64) + (shard.node_ptr[g0:g1] - n0)[edge_graph]
        batches.append(
            GraphBatch(
                z=torch.from_numpy(shard.atomic_numbers[n0:n1].astype(np.int64)),
                edge_index=torch.from_numpy(edge_index),
                edge_distance=torch.from_numpy(shard.edge_distance[e0:e1].copy()),
                batch=torch.from_numpy(np.repeat(np.arange(batch_size), atoms)),
                ptr=torch.from_numpy(shard.node_ptr[g0 : g1 + 1] - n0),
                index=torch.arange(g0, g1),
                spacegroup=torch.full((batch_size,), -1),
                crystal_system=torch.full((batch_size,), -1),
                y=torch.from_numpy(target[g0:g1].astype(np.float32)),
            )
        )
    return batches


def with_alignn_graphs(batch: GraphBatch, shard: GraphShard) -> GraphBatch:
    """``batch`` with its edges replaced by ALIGNN's graph and line graph, built per crystal."""
    config = AlignnGraphConfig()
    edges, vectors, pairs, cosines = [], [], [], []
    edge_count = 0
    for g, row in enumerate(batch.index.tolist()):
        start, stop = shard.node_ptr[row], shard.node_ptr[row + 1]
        graph = alignn_graph(shard.lattices[row], shard.frac_coords[start:stop], config)
        edges.append(graph.edge_index.astype(np.int64) + int(batch.ptr[g]))
        vectors.append(graph.edge_vector)
        pairs.append(graph.line_index.astype(np.int64) + edge_count)
        cosines.append(graph.line_cos)
        edge_count += graph.num_edges
    vector = torch.from_numpy(np.concatenate(vectors))
    return GraphBatch(
        **{
            name: getattr(batch, name)
            for name in ("z", "batch", "ptr", "index", "spacegroup", "crystal_system", "y")
        },
        edge_index=torch.from_numpy(np.concatenate(edges, axis=1)),
        edge_distance=vector.norm(dim=1),
        edge_vector=vector,
        line_index=torch.from_numpy(np.concatenate(pairs, axis=1)),
        line_cos=torch.from_numpy(np.concatenate(cosines)),
    )


class Trainer:
    """One model, its optimizer and its batches (cycled), with fixed random unit-norm teacher stand-ins."""

    def __init__(
        self, name: str, model: nn.Module, optimizer: torch.optim.Optimizer, batches: list[GraphBatch]
    ):
        device = next(model.parameters()).device
        self.name, self.model, self.optimizer = name, model.train(), optimizer
        self.batches = [b.to(device) for b in batches]
        gen = torch.Generator().manual_seed(0)
        self.teachers = [
            F.normalize(torch.randn(b.num_nodes, TEACHER_DIM, generator=gen), dim=1).to(device)
            for b in batches
        ]
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.times: list[float] = []
        self.graphs = 0

    def step(self, k: int, timed: bool) -> None:
        batch, teacher = self.batches[k % len(self.batches)], self.teachers[k % len(self.batches)]
        self.sync()
        start = time.perf_counter()
        out = self.model(batch)
        prediction_loss = F.mse_loss(out.prediction, batch.y)
        distillation_loss = F.mse_loss(F.normalize(out.nodes, dim=1), teacher)
        loss = (1 - ALPHA) * prediction_loss + ALPHA * distillation_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.sync()
        if timed:
            self.times.append(time.perf_counter() - start)
            self.graphs += batch.num_graphs

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def baseline(batches: list[GraphBatch], device: torch.device) -> Trainer:
    torch.manual_seed(0)
    model = CGCNNBaseline().to(device)
    return Trainer("CGCNN (baseline)", model, torch.optim.Adam(model.parameters(), lr=3e-3), batches)


def student(name: str, model: nn.Module, defaults: TrainingDefaults, batches: list[GraphBatch]) -> Trainer:
    """``model`` already on its device."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=defaults.lr, weight_decay=defaults.weight_decay)
    return Trainer(name, model, optimizer, batches)


def open_store(path: str, workdir: Path):
    if path != "sample":
        return crystal_data.open(path)
    from crystal_data.build import BuildSettings, build_from_cif_folder
    from crystal_data.sample import SAMPLE_LABELS, SAMPLE_SOURCE, SAMPLE_SOURCE_VERSION, sample_dir

    settings = BuildSettings(
        source=SAMPLE_SOURCE, source_version=SAMPLE_SOURCE_VERSION, label_units=dict(SAMPLE_LABELS)
    )
    build_from_cif_folder(sample_dir(), workdir / "sample", settings, workers=1, progress=False)
    return crystal_data.open(workdir / "sample")


def batch_sizes(batches: list[GraphBatch], line_graph: bool) -> str:
    atoms = statistics.mean(b.num_nodes for b in batches)
    edges = statistics.mean(b.num_edges for b in batches)
    text = f"{atoms:.0f} atoms, {edges:.0f} edges"
    if line_graph:
        text += f", {statistics.mean(b.line_cos.numel() for b in batches):.0f} line pairs"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--store", required=True, help="a store folder, or 'sample' for the shipped 200 crystals"
    )
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed train steps (rounds) per model")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--distinct", type=int, default=4, help="distinct batches, cycled")
    parser.add_argument("--model", choices=["gatgnn", "alignn", "all"], default="all")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as workdir:
        store = open_store(args.store, Path(workdir))
        shard = store.shard(args.shard)
    label = next(iter(store.label_units))
    target = np.asarray(shard.columns[label], dtype=np.float64)
    target = (target - np.nanmean(target)) / np.nanstd(target)
    knn = knn_batches(shard, args.batch_size, args.distinct, target)
    if not knn:
        raise SystemExit(f"shard {args.shard} holds fewer than {args.batch_size} crystals")

    trainers = [baseline(knn, device)]
    info = {trainers[0].name: batch_sizes(knn, False)}
    if args.model in ("gatgnn", "all"):
        torch.manual_seed(0)
        trainers.append(student("GATGNN", gatgnn.GATGNN().to(device), gatgnn.DEFAULTS, knn))
        info["GATGNN"] = info[trainers[0].name]
    if args.model in ("alignn", "all"):
        line = [with_alignn_graphs(b, shard) for b in knn]
        torch.manual_seed(0)
        trainers.append(student("ALIGNN", alignn.ALIGNN().to(device), alignn.DEFAULTS, line))
        info["ALIGNN"] = batch_sizes(line, True)
    # Interleaved rounds, so that load from other processes falls on all models alike; in each round a
    # model takes an untimed step first, which re-warms caches and the allocator after the others.
    for k in range(args.warmup + args.steps):
        for trainer in trainers:
            trainer.step(k, timed=False)
            trainer.step(k, timed=k >= args.warmup)
    rows = [
        {
            "name": t.name,
            "params": t.parameters,
            "graphs_per_s": t.graphs / sum(t.times),
            "median_s": statistics.median(t.times),
        }
        for t in trainers
    ]

    base = rows[0]["graphs_per_s"]
    print(
        f"store {store.path}, shard {args.shard}, batch {args.batch_size}, {args.steps} timed steps "
        f"({args.warmup} warm-up), {len(knn)} distinct batches; torch {torch.__version__}, "
        f"{args.threads} threads, {cpu_model()}, Python {platform.python_version()}, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
        + "\n"
    )
    table = [
        [
            r["name"],
            f"{r['params']:,}",
            info[r["name"]],
            f"{r['median_s'] * 1e3:.0f}",
            f"{r['graphs_per_s']:.1f}",
            f"{r['graphs_per_s'] / base:.3f}",
        ]
        for r in rows
    ]
    headers = ["model", "parameters", "mean batch", "median step (ms)", "graphs/s", "vs CGCNN"]
    print(md_table(headers, table))


if __name__ == "__main__":
    main()
