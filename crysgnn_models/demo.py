"""``crysgnn demo``: the whole method on the bundled 200-crystal sample, on CPU, in a few minutes.

Pretrain CrysGNN briefly on the sample store (labels unused), then train CGCNN on formation energy
twice on the same split and seed, vanilla (alpha 0) and distilled (alpha 0.5), and compare test MAEs.
The sample is tiny, so the numbers show that everything runs end to end, not the paper's gains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crysgnn_models.distill.config import DistillConfig
from crysgnn_models.distill.trainer import distill
from crysgnn_models.pretrain.config import PretrainConfig
from crysgnn_models.pretrain.trainer import pretrain

TARGET = "formation_energy_per_atom"


@dataclass(frozen=True)
class DemoResult:
    teacher: Path
    vanilla_mae: float
    distilled_mae: float
    unit: str | None


def run_demo(
    store: str | Path,
    out: str | Path,
    *,
    pretrain_epochs: int = 15,
    student_epochs: int = 60,
    scheme: str = "60-20-20",
    seed: int = 0,
    progress: bool = True,
) -> DemoResult:
    """Pretrain, then vanilla and distilled CGCNN on ``store`` (the sample store by default)."""
    out = Path(out)
    teacher_dir = out / "crysgnn"
    result = pretrain(
        PretrainConfig(
            data=str(store),
            out=str(teacher_dir),
            epochs=pretrain_epochs,
            batch_size=32,
            seed=seed,
            device="cpu",
            log_every=2,
        ),
        resume=(teacher_dir / "last.pt").exists(),
        progress=progress,
    )
    teacher = result.out / "best.pt"
    maes = {}
    for name, alpha in (("vanilla", 0.0), ("distilled", 0.5)):
        run = distill(
            DistillConfig(
                data=str(store),
                target=TARGET,
                out=str(out / f"cgcnn-{name}"),
                student="cgcnn",
                teacher=str(teacher) if alpha else None,
                alpha=alpha,
                scheme=scheme,
                seed=seed,
                epochs=student_epochs,
                batch_size=32,
                device="cpu",
            ),
            progress=progress,
        )
        maes[name] = run
    return DemoResult(
        teacher, maes["vanilla"].mae["test"], maes["distilled"].mae["test"], maes["vanilla"].results["unit"]
    )
