"""The distillation objective (method.md §6.1), vectorised over the batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch_geometric.utils import scatter


def embedding_distance(student: torch.Tensor, teacher: torch.Tensor, batch: torch.Tensor, num_graphs: int):
    """Mean over crystals of the per-crystal MSE between L2-normalised student node features and the
    teacher's (already normalised) node embeddings: every crystal weighs the same, whatever its size."""
    student = F.normalize(student.float(), dim=-1, eps=1e-12)
    per_node = (student - teacher.float()).pow(2).mean(dim=-1)
    per_graph = scatter(per_node, batch, dim=0, dim_size=num_graphs, reduce="mean")
    return per_graph.mean()


def target_loss(prediction: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Regression loss on the normalised target: ``mse`` (CGCNN, ALIGNN) or ``smooth_l1`` (GATGNN)."""
    if kind == "mse":
        return F.mse_loss(prediction.float(), target)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(prediction.float(), target)
    raise ValueError(f"unknown loss {kind!r}; known: 'mse', 'smooth_l1'")


def distillation_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    student_nodes: torch.Tensor | None,
    teacher_nodes: torch.Tensor | None,
    batch: torch.Tensor,
    num_graphs: int,
    alpha: float,
    kind: str = "mse",
) -> tuple[torch.Tensor, dict[str, float]]:
    """``(1 - alpha) * target_loss + alpha * embedding_distance``; ``alpha = 0`` is the vanilla student.

    Returns the loss and its two terms (floats, for logs)."""
    fit = target_loss(prediction, target, kind)
    if alpha == 0:
        return fit, {"target": float(fit.detach()), "distill": 0.0}
    if teacher_nodes is None or student_nodes is None:
        raise ValueError("alpha > 0 needs the student's node features and the teacher's embeddings")
    if student_nodes.shape != teacher_nodes.shape:
        raise ValueError(
            f"student node features {tuple(student_nodes.shape)} do not match the teacher's "
            f"{tuple(teacher_nodes.shape)}: the student's distilled features need the teacher's width"
        )
    match = embedding_distance(student_nodes, teacher_nodes, batch, num_graphs)
    loss = (1 - alpha) * fit + alpha * match
    return loss, {"target": float(fit.detach()), "distill": float(match.detach())}
