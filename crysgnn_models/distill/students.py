"""Building a student by name (fresh, or from a finished run's weights), and picking the store
featurizer it reads."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from crysgnn_models.distill.normalizer import Normalizer
from crysgnn_models.distill.teacher import Teacher
from crysgnn_models.models.defaults import TrainingDefaults
from crysgnn_models.models.registry import StudentSpec
from crysgnn_models.training.checkpoint import load_checkpoint
from crystal_data.store import layout
from crystal_data.store.manifest import file_sha256


def build_student(
    spec: StudentSpec, kwargs: dict, teacher: Teacher | None = None
) -> tuple[nn.Module, TrainingDefaults]:
    """The student of ``spec`` with ``kwargs``; the fine-tuned baseline starts from ``teacher``'s encoder."""
    cls, defaults = spec.load()
    if spec.needs_pretrained:
        if teacher is None:
            raise ValueError(f"{spec.name} starts from a pretrained CrysGNN: give --teacher CKPT")
        return cls.from_crysgnn(teacher.model, **kwargs), defaults
    return cls(**kwargs), defaults


def initial_weights(path: str | Path, spec: StudentSpec, kwargs: dict) -> tuple[dict, Normalizer, dict]:
    """The weights and target normaliser of a finished run of the same student (its ``model.pt``), to
    fine-tune from, and what identifies them (path, sha256)."""
    state = load_checkpoint(path, kind="student")
    if state["student"] != spec.name:
        raise ValueError(f"{path}: a {state['student']} model, but this run trains {spec.name}")
    if state["student_kwargs"] != kwargs:
        raise ValueError(
            f"{path}: built with {state['student_kwargs']}, this run's student with {kwargs}: the weights "
            "do not fit"
        )
    return state["model"], Normalizer(**state["normalizer"]), {"path": str(path), "sha256": file_sha256(path)}


def graphs_for(spec: StudentSpec, store: str | Path) -> str | None:
    """The hash of the store's graphs of the student's kind (``None``: the store's default graphs)."""
    manifest = json.loads((Path(store) / layout.MANIFEST).read_text())
    default = manifest["default_graphs"]
    if manifest["graphs"][default].get("kind", "knn-multigraph") == spec.graph_kind:
        return None
    for digest, config in manifest["graphs"].items():
        if config.get("kind") == spec.graph_kind:
            return digest
    raise ValueError(
        f"{store}: no {spec.graph_kind!r} graphs for {spec.name}; add them with "
        f"`crystal-data graphs {store} --kind {spec.graph_kind}`"
    )
