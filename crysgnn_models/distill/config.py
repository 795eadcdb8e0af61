"""Everything a distillation (or vanilla) student run depends on, saved with its results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class DistillConfig:
    """Train ``student`` on ``target`` of ``data`` (a dataset name or a store path), with the frozen
    ``teacher`` (a CrysGNN checkpoint) weighted by ``alpha`` (method.md §6.1; 0 is the vanilla student).

    Training settings left ``None`` take the student's paper defaults
    (:data:`~crysgnn_models.models.defaults.TrainingDefaults` in each model module). ``scheme`` and
    ``split_seed`` pick the split (``crystal_data.load``); ``seed`` the initialisation and shuffling.
    Selection is on validation MAE; the test split is scored once, at the end.

    The DFT-plus-experiment protocol (docs/models.md §6): ``train_with`` lists more labelled datasets
    whose train split (or the split they name) joins the training data, each ``{"data", "target",
    "scheme", "split_seed", "split"}`` (the last three optional); ``test_on``, in the same form, is
    the test set instead of ``data``'s test split (all of it unless it names a split). Validation is
    always ``data``'s. Every target must have the same unit. ``init``: fine-tune from a finished run of
    the same student (its ``model.pt``): its weights and its target normaliser are the starting point
    (the DFT-then-experiment variant).
    """

    data: str
    target: str
    out: str
    student: str = "cgcnn"
    teacher: str | None = None
    alpha: float = 0.5
    scheme: str | None = None
    split_seed: int | None = None
    seed: int = 0
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    optimizer: str | None = None
    scheduler: str | None = None
    loss: str | None = None
    patience: int | None = None
    device: str = "auto"
    num_workers: int = 0
    offline: bool | None = None
    student_kwargs: dict = field(default_factory=dict)
    train_with: list[dict] = field(default_factory=list)
    test_on: dict | None = None
    init: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DistillConfig:
        return cls(**data)
