"""Scoring a student: predictions in the target's units, MAE, the parity plot, ``crysgnn evaluate``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from crysgnn_models.distill.normalizer import Normalizer
from crysgnn_models.loader import GraphStream


@dataclass(frozen=True)
class Predictions:
    """Per crystal, in the split's store-row order: ``index`` (store rows), ``target``, ``prediction``."""

    index: np.ndarray
    target: np.ndarray
    prediction: np.ndarray

    @property
    def mae(self) -> float:
        return float(np.mean(np.abs(self.prediction - self.target)))


@torch.no_grad()
def predict(model: torch.nn.Module, stream: GraphStream, normalizer: Normalizer, device) -> Predictions:
    """Run ``model`` in eval mode over every crystal of ``stream`` (unshuffled)."""
    was_training = model.training
    model.eval()
    index, target, prediction = [], [], []
    for batch in stream:
        batch = batch.to(device)
        output = model(batch)
        prediction.append(normalizer.denorm(output.prediction.float()).cpu().numpy())
        target.append(batch.y.cpu().numpy())
        index.append(batch.index.cpu().numpy())
    model.train(was_training)
    return Predictions(
        np.concatenate(index),
        np.concatenate(target).astype(np.float64),
        np.concatenate(prediction).astype(np.float64),
    )


def write_predictions(out: Path, scored: dict[str, Predictions], unit: str | None, title: str) -> None:
    """``predictions.parquet`` (split, store row, target, prediction) and ``parity.png`` for test."""
    import polars as pl

    frames = [
        pl.DataFrame({"split": name, "row": p.index, "target": p.target, "prediction": p.prediction})
        for name, p in scored.items()
    ]
    pl.concat(frames).write_parquet(out / "predictions.parquet")
    if "test" in scored:
        parity_plot(out / "parity.png", scored["test"], unit, title)


def parity_plot(path: Path, predictions: Predictions, unit: str | None, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    ax.scatter(predictions.target, predictions.prediction, s=6, alpha=0.5)
    both = np.concatenate([predictions.target, predictions.prediction])
    lo, hi = (float(both.min()), float(both.max())) if len(both) else (0.0, 1.0)
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8)
    label = f" ({unit})" if unit else ""
    ax.set_xlabel(f"target{label}")
    ax.set_ylabel(f"prediction{label}")
    ax.set_title(f"{title}\ntest MAE {predictions.mae:.4f}{label}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def evaluate_saved(
    model_path: str | Path,
    split: str = "test",
    *,
    data: str | None = None,
    target: str | None = None,
    scheme: str | None = None,
    split_seed: int | None = None,
    device: str = "auto",
    offline: bool | None = None,
    batch_size: int = 256,
) -> Predictions:
    """Re-score a saved student (``model.pt``) on ``split`` of its own data (``test``: what the run was
    tested on, its ``test_on`` dataset if it had one), or of ``data``/``target``."""
    from crysgnn_models.distill.config import DistillConfig
    from crysgnn_models.distill.data import DataRef, primary_ref, test_ref
    from crysgnn_models.distill.students import graphs_for
    from crysgnn_models.models.registry import student_spec
    from crysgnn_models.training.checkpoint import load_checkpoint
    from crysgnn_models.training.distributed import pick_device
    from crystal_data.splits import canonical_split

    state = load_checkpoint(model_path, kind="student")
    spec = student_spec(state["student"])
    cls, _ = spec.load()
    model = cls(**state["student_kwargs"])
    model.load_state_dict(state["model"])
    saved = DistillConfig.from_dict(state["config"])
    if data is None and target is None and scheme is None and split_seed is None:
        split = canonical_split(split)
        ref = test_ref(saved) if split == "test" else primary_ref(saved, split)
    else:
        ref = DataRef(
            data or saved.data,
            target or saved.target,
            split,
            scheme if scheme is not None else saved.scheme,
            split_seed if split_seed is not None else saved.split_seed,
        )
    dataset = ref.load(offline)
    chosen = pick_device(device)
    stream = GraphStream.from_dataset(
        dataset, batch_size=batch_size, shuffle=False, graphs=graphs_for(spec, dataset.store_path)
    )
    return predict(model.to(chosen), stream, Normalizer(**state["normalizer"]), chosen)
