"""Run every (row, column, seed) cell of a table, skipping cells already finished, then report."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from crysgnn_models.distill.config import DistillConfig
from crysgnn_models.distill.trainer import MODEL, RESULTS, distill
from crysgnn_models.experiments.table import Column, Row, Table, slug

log = logging.getLogger("crysgnn.experiment")

TRAINING_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "optimizer", "scheduler", "loss", "patience")


@dataclass(frozen=True)
class Run:
    row: Row
    column: Column
    seed: int
    folder: Path

    @property
    def done(self) -> bool:
        return (self.folder / RESULTS).is_file()


def plan_runs(table: Table, out: str | Path) -> list[Run]:
    """Every cell's runs, in table order: ``out/runs/<row>/<column>/seed-<k>/``."""
    return [
        Run(row, column, seed, run_folder(out, row.slug, column, seed))
        for row in table.rows
        for column in table.columns
        for seed in table.seeds
    ]


def run_folder(out: str | Path, row_slug: str, column: Column, seed: int) -> Path:
    return Path(out) / "runs" / row_slug / column.key / f"seed-{seed}"


def run_table(
    table: Table,
    out: str | Path,
    *,
    teacher: str | None,
    data_paths: dict[str, str] | None = None,
    overrides: dict | None = None,
    device: str = "auto",
    offline: bool | None = None,
    progress: bool = True,
) -> list[Run]:
    """Train every run of ``table`` that has no ``results.json`` yet (a killed table resumes at the
    first unfinished run). ``data_paths`` maps dataset names of the table to store paths;
    ``overrides`` replaces training settings of the table (``epochs``, ``student_kwargs`` ...)."""
    settings = {**table.training, **(overrides or {})}
    runs = plan_runs(table, out)
    if (
        any(column.alpha > 0 or column.student == "crysgnn-finetuned" for column in table.columns)
        and not teacher
    ):
        raise ValueError(f"table {table.name} has distilled or fine-tuned columns: give --teacher CKPT")
    for number, run in enumerate(runs, 1):
        if run.done:
            log.info(
                "[%d/%d] %s / %s / seed %d: done", number, len(runs), run.row.label, run.column.key, run.seed
            )
            continue
        log.info("[%d/%d] %s / %s / seed %d", number, len(runs), run.row.label, run.column.key, run.seed)
        config = run_config(run, settings, teacher, data_paths or {}, device, offline)
        if run.row.init_from is not None:
            start = run_folder(out, slug(run.row.init_from), run.column, run.seed)
            if not (start / RESULTS).is_file():
                raise ValueError(f"{start}: the run {run.row.label!r} starts from has not finished")
            config = replace(config, init=str(start / MODEL))
        distill(config, progress=progress)
    return runs


def run_config(
    run: Run,
    settings: dict,
    teacher: str | None,
    data_paths: dict[str, str],
    device: str,
    offline: bool | None,
) -> DistillConfig:
    uses_teacher = run.column.alpha > 0 or run.column.student == "crysgnn-finetuned"

    def located(ref: dict) -> dict:
        return {**ref, "data": data_paths.get(ref["data"], ref["data"])}

    config = DistillConfig(
        data=data_paths.get(run.row.data, run.row.data),
        target=run.row.target,
        out=str(run.folder),
        student=run.column.student,
        teacher=teacher if uses_teacher else None,
        alpha=run.column.alpha,
        scheme=run.row.scheme,
        seed=run.seed,
        device=device,
        offline=offline,
        student_kwargs=dict(settings.get("student_kwargs", {}).get(run.column.student, {})),
        train_with=[located(ref) for ref in run.row.train_with],
        test_on=located(run.row.test_on) if run.row.test_on else None,
    )
    return replace(config, **{key: settings[key] for key in TRAINING_KEYS if key in settings})


def collect(runs: Sequence[Run]) -> list[dict]:
    """The finished runs' results (``results.json``) with their cell."""
    found = []
    for run in runs:
        if run.done:
            results = json.loads((run.folder / RESULTS).read_text())
            found.append(
                {"row": run.row.label, "column": run.column.key, "seed": run.seed, "results": results}
            )
    return found
