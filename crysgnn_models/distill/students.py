"""Building a student by name, and picking the store featurizer it reads."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from crysgnn_models.distill.teacher import Teacher
from crysgnn_models.models.defaults import TrainingDefaults
from crysgnn_models.models.registry import StudentSpec
from crystal_data.store import layout


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
