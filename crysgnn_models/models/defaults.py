"""Training defaults each student's own paper or code uses (method.md §6.3, §9, §10)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class TrainingDefaults:
    """Optimiser, schedule and loss a student is trained with unless the user overrides them.

    ``scheduler``: ``"multistep"`` (``milestones``, ``gamma``), ``"onecycle"`` or ``"none"``.
    ``loss``: ``"mse"`` or ``"smooth_l1"`` on the normalised target.
    """

    optimizer: str = "adam"
    lr: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 1000
    scheduler: str = "multistep"
    milestones: tuple[int, ...] = (100,)
    gamma: float = 0.1
    loss: str = "mse"
    source: str = ""
    """Where these numbers come from."""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)
