"""The CrysGNN pretraining loop, top to bottom: data, model, optimiser, resume, steps, checkpoints.

Runs alone or under ``torchrun`` (one process per device; DDP with NCCL on GPUs, gloo on CPU). Only
rank 0 writes files. A checkpoint holds the model, the optimiser, the loader's position and the run's
configuration, so ``--resume`` continues mid-epoch with exactly the batches that were still to come.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from crysgnn_models.loader import GraphLoader, GraphStream
from crysgnn_models.models.crysgnn import CrysGNN, CrysGNNConfig
from crysgnn_models.pretrain.config import PretrainConfig
from crysgnn_models.pretrain.losses import LOSS_NAMES, PretrainObjective
from crysgnn_models.training.checkpoint import load_checkpoint, save_checkpoint, store_fingerprint
from crysgnn_models.training.distributed import (
    Runtime,
    all_mean,
    check_replicas_agree,
    setup_runtime,
    teardown_runtime,
)
from crysgnn_models.training.history import CsvLog, plot_curves, read_csv
from crystal_data.progress import progress_bar

log = logging.getLogger("crysgnn.pretrain")

LAST, BEST, LOG, PLOT = "last.pt", "best.pt", "log.csv", "loss.png"
COLUMNS = ["step", "epoch", "loss", *LOSS_NAMES, "graphs_per_s", "lr"]


@dataclass(frozen=True)
class PretrainResult:
    out: Path
    steps: int
    epochs: int
    final_loss: float
    best_loss: float
    seconds: float


def pretrain(config: PretrainConfig, resume: bool = False, progress: bool = True) -> PretrainResult:
    """Pretrain CrysGNN on the store ``config.data``; checkpoints, ``log.csv`` and ``loss.png`` go to
    ``config.out``. ``resume`` continues from ``out/last.pt`` (the data and the run's settings must match)."""
    runtime = setup_runtime(config.device)
    try:
        return _run(config, runtime, resume, progress)
    finally:
        teardown_runtime(runtime)


def _run(config: PretrainConfig, runtime: Runtime, resume: bool, progress: bool) -> PretrainResult:
    out = Path(config.out)
    data_hash = store_fingerprint(config.data)
    state = _resume_state(out, config, data_hash) if resume else None
    if state is None and (out / LAST).exists():
        raise FileExistsError(f"{out / LAST} exists: pass --resume to continue that run, or a new --out")
    torch.manual_seed(config.seed)

    # data: each rank streams its own disjoint share of every epoch
    stream = GraphStream(
        config.data,
        batch_size=config.batch_size,
        shuffle=True,
        seed=config.seed,
        drop_last=config.drop_last,
        buffer_shards=config.buffer_shards,
        rank=runtime.rank,
        world_size=runtime.world_size,
    )
    loader = GraphLoader(stream, num_workers=config.num_workers, pin_memory=runtime.device.type == "cuda")

    # model and optimiser
    model_config = CrysGNNConfig(**config.model)
    model = CrysGNN(model_config).to(runtime.device)
    objective = PretrainObjective(model, config.weights, mask_ratio=config.mask_ratio, seed=config.seed)
    sampler = objective.generator  # draws masked atoms and sampled pairs; saved for an exact resume
    if runtime.distributed:
        unused = any(w == 0 for w in config.weights.values())
        objective = DistributedDataParallel(objective, find_unused_parameters=unused)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    amp = (
        torch.autocast(device_type=runtime.device.type, dtype=torch.bfloat16) if config.amp else nullcontext()
    )

    epoch, step, best = 0, 0, math.inf
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        sampler.set_state(state["sampler"])
        epoch, step, best = state["epoch"], state["step"], state["best_loss"]
        if runtime.is_main:
            log.info("resuming %s at epoch %d, step %d", out, epoch, step)
    history = CsvLog(out / LOG, COLUMNS) if runtime.is_main else None
    if history is not None and state is not None:
        history.truncate_after("step", step)  # rows logged after the checkpoint are replayed

    def checkpoint(path: Path, epoch_loss: float | None = None) -> None:
        check_replicas_agree(model, runtime)
        if runtime.is_main:
            save_checkpoint(
                path,
                {
                    "kind": "crysgnn",
                    "model_config": model_config.to_dict(),
                    "config": config.to_dict(),
                    "data": {"store": str(config.data), "manifest_sha256": data_hash},
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "loader": loader.state_dict(),
                    "sampler": sampler.get_state(),
                    "epoch": epoch,
                    "step": step,
                    "best_loss": best,
                    "epoch_loss": epoch_loss,
                    "world_size": runtime.world_size,
                },
            )

    started = time.perf_counter()
    steps_per_epoch = len(loader)
    planned = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        planned = min(planned, config.max_steps)
    last_loss, stopped = math.nan, False
    with progress_bar(progress and runtime.is_main, max(planned - step, 0), "pretrain") as advance:
        while epoch < config.epochs and not stopped:
            loader.set_epoch(epoch)  # the same epoch keeps its position: a mid-epoch resume goes on
            objective.train()
            epoch_sum, count, window_graphs, window_start = 0.0, 0, 0, time.perf_counter()
            for batch in loader:
                batch = batch.to(runtime.device, non_blocking=True)
                with amp:
                    total, terms = objective(batch)
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                step, count = step + 1, count + 1
                last_loss = float(total.detach())
                epoch_sum += last_loss
                window_graphs += batch.num_graphs
                advance(1)
                if step % config.log_every == 0 and history is not None:
                    seconds = time.perf_counter() - window_start
                    history.append(
                        {
                            "step": step,
                            "epoch": epoch,
                            "loss": last_loss,
                            **{name: float(value) for name, value in terms.items()},
                            "graphs_per_s": window_graphs * runtime.world_size / max(seconds, 1e-9),
                            "lr": optimizer.param_groups[0]["lr"],
                        }
                    )
                    window_graphs, window_start = 0, time.perf_counter()
                if step % config.save_every == 0:
                    checkpoint(out / LAST)
                if config.max_steps is not None and step >= config.max_steps:
                    stopped = True
                    break
            if stopped and loader.step < steps_per_epoch:
                checkpoint(out / LAST)  # stopped mid-epoch: a resume picks up the next batch
                break
            epoch_loss = all_mean(epoch_sum / max(count, 1), runtime)
            epoch += 1
            if epoch_loss < best:
                best = epoch_loss
                checkpoint(out / BEST, epoch_loss)
            checkpoint(out / LAST, epoch_loss)
            if runtime.is_main:
                log.info("epoch %d: mean loss %.4f over %d steps", epoch, epoch_loss, count)
    if history is not None:
        rows = read_csv(out / LOG)
        if rows:
            plot_curves(out / PLOT, "step", ["loss", *LOSS_NAMES], rows, "CrysGNN pretraining loss")
    return PretrainResult(out, step, epoch, last_loss, best, time.perf_counter() - started)


def _resume_state(out: Path, config: PretrainConfig, data_hash: str) -> dict | None:
    path = out / LAST
    if not path.exists():
        return None
    state = load_checkpoint(path, kind="crysgnn")
    if state["data"]["manifest_sha256"] != data_hash:
        raise ValueError(f"{path}: trained on other data (store manifest {state['data']['manifest_sha256']})")
    saved = dict(state["config"])
    for name in ("batch_size", "seed", "buffer_shards", "drop_last", "model", "weights", "mask_ratio"):
        if saved.get(name) != getattr(config, name):
            change = f"{saved.get(name)!r} -> {getattr(config, name)!r}"
            raise ValueError(f"{path}: cannot resume with a different {name} ({change})")
    return state
