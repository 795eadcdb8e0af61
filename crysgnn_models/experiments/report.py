"""A table's results: mean ± std over seeds next to the paper's numbers, relative improvement, a plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl

from crysgnn_models.experiments.runner import Run, collect
from crysgnn_models.experiments.table import Table


def summarise(table: Table, runs: list[Run]) -> pl.DataFrame:
    """One line per (row, column): seeds finished, test MAE mean and sample std (ddof 1; 0 for one
    seed), the paper's value, and for distilled columns the relative improvement over the vanilla
    column of the same student, ours and the paper's, in %."""
    finished = collect(runs)
    lines = []
    for row in table.rows:
        for column in table.columns:
            maes = [
                f["results"]["mae"]["test"]
                for f in finished
                if f["row"] == row.label and f["column"] == column.key
            ]
            seeds = [f["seed"] for f in finished if f["row"] == row.label and f["column"] == column.key]
            mean = float(np.mean(maes)) if maes else math.nan
            std = float(np.std(maes, ddof=1)) if len(maes) > 1 else (0.0 if maes else math.nan)
            lines.append(
                {
                    "row": row.label,
                    "column": column.key,
                    "student": column.student,
                    "alpha": column.alpha,
                    "seeds": len(maes),
                    "seed_list": ",".join(map(str, seeds)),
                    "mae_mean": mean,
                    "mae_std": std,
                    "paper": float(table.paper.get(row.label, {}).get(column.key, math.nan)),
                }
            )
    frame = pl.DataFrame(lines)
    vanilla = frame.filter(pl.col("alpha") == 0).select(
        "row", "student", pl.col("mae_mean").alias("vanilla_mean"), pl.col("paper").alias("vanilla_paper")
    )
    frame = frame.join(vanilla, on=["row", "student"], how="left")
    distilled = pl.col("alpha") > 0
    return frame.with_columns(
        improvement_pct=pl.when(distilled).then(
            100 * (pl.col("vanilla_mean") - pl.col("mae_mean")) / pl.col("vanilla_mean")
        ),
        paper_improvement_pct=pl.when(distilled).then(
            100 * (pl.col("vanilla_paper") - pl.col("paper")) / pl.col("vanilla_paper")
        ),
    ).drop("vanilla_mean", "vanilla_paper")


def write_report(table: Table, runs: list[Run], out: str | Path) -> dict[str, Path]:
    """``results.csv``, ``results.md`` and ``results.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame = summarise(table, runs)
    paths = {"csv": out / "results.csv", "md": out / "results.md", "png": out / "results.png"}
    frame.write_csv(paths["csv"])
    paths["md"].write_text(markdown(table, frame))
    bar_plot(table, frame, paths["png"])
    return paths


def _cell(mean: float, std: float, seeds: int) -> str:
    if seeds == 0:
        return "–"
    return f"{mean:.4g} ± {std:.2g}" if seeds > 1 else f"{mean:.4g}"


def markdown(table: Table, frame: pl.DataFrame) -> str:
    """Rows x columns of ``ours (paper)`` test MAE, then the relative improvements."""
    keys = [c.key for c in table.columns]
    lines = [f"# {table.title or table.name}", "", "Test MAE, mean ± std over seeds (paper in brackets).", ""]
    lines.append("| | " + " | ".join(keys) + " |")
    lines.append("|---" * (len(keys) + 1) + "|")
    for row in table.rows:
        cells = []
        for key in keys:
            line = frame.filter((pl.col("row") == row.label) & (pl.col("column") == key)).row(0, named=True)
            paper = "" if math.isnan(line["paper"]) else f" ({line['paper']:.4g})"
            cells.append(_cell(line["mae_mean"], line["mae_std"], line["seeds"]) + paper)
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    improved = frame.filter(pl.col("alpha") > 0)
    if improved.height:
        lines += [
            "",
            "Relative improvement of the distilled student over its vanilla version, % (paper).",
            "",
        ]
        lines.append("| | " + " | ".join(improved["column"].unique(maintain_order=True)) + " |")
        lines.append("|---" * (improved["column"].n_unique() + 1) + "|")
        for row in table.rows:
            part = improved.filter(pl.col("row") == row.label)
            cells = [
                (
                    "–"
                    if r["improvement_pct"] is None or math.isnan(r["improvement_pct"])
                    else f"{r['improvement_pct']:.1f}"
                )
                + (
                    ""
                    if r["paper_improvement_pct"] is None or math.isnan(r["paper_improvement_pct"])
                    else f" ({r['paper_improvement_pct']:.1f})"
                )
                for r in part.iter_rows(named=True)
            ]
            lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    if table.note:
        lines += ["", table.note]
    return "\n".join(lines) + "\n"


def bar_plot(table: Table, frame: pl.DataFrame, path: Path) -> Path:
    """Grouped bars per row: each column's mean test MAE with its std, the paper's value as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [c.key for c in table.columns]
    fig, axes = plt.subplots(1, len(table.rows), figsize=(max(4, 1 + 0.6 * len(keys)) * len(table.rows), 3.8))
    axes = np.atleast_1d(axes)
    for ax, row in zip(axes, table.rows):
        part = {r["column"]: r for r in frame.filter(pl.col("row") == row.label).iter_rows(named=True)}
        x = np.arange(len(keys))
        ax.bar(
            x,
            [part[k]["mae_mean"] for k in keys],
            yerr=[part[k]["mae_std"] for k in keys],
            capsize=3,
            color=["tab:gray" if not k.endswith("-D") else "tab:blue" for k in keys],
        )
        ax.scatter(
            x, [part[k]["paper"] for k in keys], color="black", marker="_", s=200, label="paper", zorder=3
        )
        ax.set_xticks(x, keys, rotation=45, ha="right", fontsize=8)
        ax.set_title(row.label, fontsize=9)
        ax.set_ylabel(f"test MAE ({row.unit})" if row.unit else "test MAE")
    axes[0].legend(fontsize=8)
    fig.suptitle(table.title or table.name, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
