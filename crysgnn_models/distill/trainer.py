"""Train one student on one split, vanilla (alpha = 0) or distilled from a frozen CrysGNN teacher.

Top to bottom: the splits (with any ``train_with`` / ``test_on`` datasets), the teacher's cached
embeddings, the student and its target normaliser (fitted on the training data only; a fine-tuned run
keeps its starting run's), the optimiser, epochs with validation after each, the best-on-validation
weights, then the test split scored once. Writes ``model.pt``, ``results.json``, ``history.csv``,
``parity.png`` and ``predictions.parquet`` into ``out``.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from crysgnn_models.distill.config import DistillConfig
from crysgnn_models.distill.data import load_run_data
from crysgnn_models.distill.evaluate import predict, write_predictions
from crysgnn_models.distill.losses import distillation_loss
from crysgnn_models.distill.normalizer import Normalizer
from crysgnn_models.distill.optim import make_optimizer, make_scheduler
from crysgnn_models.distill.students import build_student, graphs_for, initial_weights
from crysgnn_models.distill.teacher import load_teacher, teacher_embeddings
from crysgnn_models.loader import GraphLoader, GraphStream, MixedStream
from crysgnn_models.models.registry import student_spec
from crysgnn_models.training.checkpoint import save_checkpoint, store_fingerprint
from crysgnn_models.training.distributed import pick_device
from crysgnn_models.training.history import CsvLog, plot_curves, read_csv
from crystal_data.progress import progress_bar
from crystal_data.store.atomic import atomic_write_json

log = logging.getLogger("crysgnn.distill")

MODEL, RESULTS, HISTORY, PARITY, CURVES = (
    "model.pt",
    "results.json",
    "history.csv",
    "parity.png",
    "curves.png",
)


@dataclass(frozen=True)
class DistillResult:
    out: Path
    mae: dict[str, float]
    best_epoch: int
    results: dict


def distill(config: DistillConfig, progress: bool = True) -> DistillResult:
    """Run ``config``; see the module docstring for what is written."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = student_spec(config.student)
    if spec.needs_pretrained and config.alpha:
        raise ValueError(f"{spec.name} trains the pretrained encoder itself: use --alpha 0")
    if (config.alpha > 0 or spec.needs_pretrained) and not config.teacher:
        raise ValueError(f"{spec.name} with alpha {config.alpha} needs --teacher CKPT")
    device = pick_device(config.device)
    torch.manual_seed(config.seed)

    # data: the splits of one target (plus any train_with / test_on datasets), read from the stores
    data = load_run_data(config)
    store = data.train[0].store_path
    graphs = {ds.store_path: graphs_for(spec, ds.store_path) for ds in (*data.train, data.val, data.test)}

    # teacher: frozen, its embeddings of every training crystal computed once per store and cached
    teacher = load_teacher(config.teacher) if config.teacher else None
    teacher_folders = {}
    if teacher is not None and config.alpha > 0:
        for ds in data.train:
            if ds.store_path not in teacher_folders:
                teacher_folders[ds.store_path] = teacher_embeddings(
                    teacher, ds.store_path, device=device, progress=progress
                )

    # student and optimiser, with the student's paper defaults unless overridden
    student, defaults = build_student(spec, config.student_kwargs, teacher)
    student.to(device)
    saved_kwargs = dict(config.student_kwargs)
    if spec.needs_pretrained:  # rebuilt later without the teacher: keep the encoder's architecture
        saved_kwargs["config"] = student.config.to_dict()
    if config.init:  # fine-tuning a finished run: its weights, and its normaliser (the head's units)
        weights, normalizer, init_info = initial_weights(config.init, spec, saved_kwargs)
        student.load_state_dict(weights)
    else:
        normalizer, init_info = Normalizer.fit(np.concatenate([ds.y for ds in data.train])), None
    settings = _settings(config, defaults)
    train_streams = [
        GraphStream.from_dataset(
            ds,
            batch_size=settings["batch_size"],
            shuffle=True,
            seed=config.seed,
            teacher=teacher_folders.get(ds.store_path),
            graphs=graphs[ds.store_path],
        )
        for ds in data.train
    ]
    train_stream = (
        train_streams[0] if len(train_streams) == 1 else MixedStream(train_streams, seed=config.seed)
    )
    train_loader = GraphLoader(train_stream, num_workers=config.num_workers, pin_memory=device.type == "cuda")
    evaluated = {"train": data.train[0], "val": data.val, "test": data.test}  # train: the run's own
    eval_streams = {
        name: GraphStream.from_dataset(ds, batch_size=256, shuffle=False, graphs=graphs[ds.store_path])
        for name, ds in evaluated.items()
    }
    optimizer = make_optimizer(student, settings)
    scheduler = make_scheduler(optimizer, settings, steps_per_epoch=len(train_loader))

    (out / HISTORY).unlink(missing_ok=True)  # a run starts afresh; experiments resume whole runs
    history = CsvLog(
        out / HISTORY, ["epoch", "loss", "target_loss", "distill_loss", "val_mae", "lr", "seconds"]
    )
    best_mae, best_epoch, best_state, stale = math.inf, -1, None, 0
    started = time.perf_counter()
    with progress_bar(progress, settings["epochs"], f"{spec.name} a={config.alpha:g}") as advance:
        for epoch in range(settings["epochs"]):
            train_loader.set_epoch(epoch)
            student.train()
            sums, count, epoch_start = np.zeros(3), 0, time.perf_counter()
            for batch in train_loader:
                batch = batch.to(device, non_blocking=True)
                output = student(batch)
                loss, terms = distillation_loss(
                    output.prediction,
                    normalizer.norm(batch.y),
                    output.nodes,
                    batch.teacher,
                    batch.batch,
                    batch.num_graphs,
                    config.alpha,
                    settings["loss"],
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if settings["scheduler"] == "onecycle":
                    scheduler.step()
                sums += (float(loss.detach()), terms["target"], terms["distill"])
                count += 1
            if settings["scheduler"] == "multistep":
                scheduler.step()
            val = predict(student, eval_streams["val"], normalizer, device)
            val_mae = float(np.mean(np.abs(val.prediction - val.target)))
            means = sums / max(count, 1)
            history.append(
                {
                    "epoch": epoch + 1,
                    "loss": means[0],
                    "target_loss": means[1],
                    "distill_loss": means[2],
                    "val_mae": val_mae,
                    "lr": optimizer.param_groups[0]["lr"],
                    "seconds": time.perf_counter() - epoch_start,
                }
            )
            if val_mae < best_mae:
                best_mae, best_epoch, stale = val_mae, epoch + 1, 0
                best_state = copy.deepcopy(student.state_dict())
            else:
                stale += 1
            advance(1)
            if config.patience is not None and stale >= config.patience:
                log.info("early stop after epoch %d: no validation gain for %d epochs", epoch + 1, stale)
                break
    seconds = time.perf_counter() - started

    # the best-on-validation weights, scored once on every split
    student.load_state_dict(best_state)
    scored = {name: predict(student, stream, normalizer, device) for name, stream in eval_streams.items()}
    mae = {name: float(np.mean(np.abs(p.prediction - p.target))) for name, p in scored.items()}
    unit = data.unit
    data_info = {
        "name": config.data,
        "store": str(store),
        "manifest_sha256": store_fingerprint(store),
        "graphs": graphs[store],
        "target": config.target,
        "unit": unit,
        "scheme": data.train[0].scheme.name if data.train[0].scheme else None,
        "sizes": data.sizes(),
        "train_with": [_describe(ds, graphs) for ds in data.train[1:]],
        "test_on": _describe(data.test, graphs) if config.test_on else None,
    }
    teacher_info = (
        {"path": teacher.path, "sha256": teacher.sha256, "reference": teacher.reference} if teacher else None
    )
    results = {
        "student": spec.name,
        "alpha": config.alpha,
        "seed": config.seed,
        "mae": mae,
        "unit": unit,
        "best_epoch": best_epoch,
        "epochs_run": len(read_csv(out / HISTORY)),
        "seconds": seconds,
        "parameters": sum(p.numel() for p in student.parameters()),
        "data": data_info,
        "teacher": teacher_info,
        "init": init_info,
        "training": settings,
        "config": config.to_dict(),
        "normalizer": normalizer.to_dict(),
    }
    save_checkpoint(
        out / MODEL,
        {
            "kind": "student",
            "student": spec.name,
            "student_kwargs": saved_kwargs,
            "model": student.state_dict(),
            "normalizer": normalizer.to_dict(),
            "data": data_info,
            "config": config.to_dict(),
        },
    )
    atomic_write_json(out / RESULTS, results, out)  # last: an experiment counts the run done by it
    write_predictions(out, scored, unit, f"{spec.name} (alpha {config.alpha:g}) on {config.target}")
    rows = read_csv(out / HISTORY)
    plot_curves(out / CURVES, "epoch", ["loss", "target_loss", "distill_loss", "val_mae"], rows, spec.name)
    log.info(
        "%s alpha=%g: test MAE %.4f %s (best epoch %d)",
        spec.name,
        config.alpha,
        mae["test"],
        unit or "",
        best_epoch,
    )
    return DistillResult(out, mae, best_epoch, results)


def _describe(ds, graphs: dict) -> dict:
    return {
        "name": ds.name,
        "store": str(ds.store_path),
        "manifest_sha256": store_fingerprint(ds.store_path),
        "graphs": graphs[ds.store_path],
        "target": ds.target,
        "split": ds.split,
        "scheme": ds.scheme.name if ds.scheme else None,
        "size": len(ds),
    }


def _settings(config: DistillConfig, defaults) -> dict:
    settings = defaults.to_dict()
    for name in ("epochs", "batch_size", "lr", "weight_decay", "optimizer", "scheduler", "loss"):
        value = getattr(config, name)
        if value is not None:
            settings[name] = value
    return settings
