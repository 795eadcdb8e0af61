"""Students by name: how to build each one, which graphs it reads, and its paper's training defaults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from torch import nn

from crysgnn_models.models.defaults import TrainingDefaults


@dataclass(frozen=True)
class StudentSpec:
    name: str
    module: str
    cls: str
    graph_kind: str = "knn-multigraph"
    """The store featurizer it reads: CGCNN's 12-NN multigraph, or ALIGNN's graphs with line graphs."""
    needs_pretrained: bool = False
    """Built from a CrysGNN checkpoint (the fine-tuned baseline)."""

    def load(self) -> tuple[Callable[..., nn.Module], TrainingDefaults]:
        module = import_module(self.module)
        return getattr(module, self.cls), module.DEFAULTS


STUDENTS: dict[str, StudentSpec] = {
    spec.name: spec
    for spec in (
        StudentSpec("cgcnn", "crysgnn_models.models.cgcnn", "CGCNN"),
        StudentSpec("crysxpp", "crysgnn_models.models.crysxpp", "CrysXPP"),
        StudentSpec("gatgnn", "crysgnn_models.models.gatgnn", "GATGNN"),
        StudentSpec("alignn", "crysgnn_models.models.alignn", "ALIGNN", graph_kind="alignn"),
        StudentSpec(
            "crysgnn-finetuned", "crysgnn_models.models.finetune", "FineTunedCrysGNN", needs_pretrained=True
        ),
    )
}


def student_spec(name: str) -> StudentSpec:
    if name not in STUDENTS:
        raise ValueError(f"unknown student {name!r}; known: {', '.join(STUDENTS)}")
    return STUDENTS[name]
