"""Metric logs as CSV (append-only, so a resumed run continues the same file) and their plots."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path


class CsvLog:
    """Rows of named numbers appended to ``path``; the header is written once, with ``columns``."""

    def __init__(self, path: str | Path, columns: Sequence[str]):
        self.path = Path(path)
        self.columns = list(columns)
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as handle:
                csv.writer(handle).writerow(self.columns)

    def append(self, row: Mapping[str, float | int | str]) -> None:
        with open(self.path, "a", newline="") as handle:
            csv.writer(handle).writerow([_format(row.get(name, "")) for name in self.columns])

    def truncate_after(self, column: str, value: float) -> None:
        """Drop rows with ``column`` > ``value`` (rows a crashed run logged after its last checkpoint)."""
        rows = read_csv(self.path)
        with open(self.path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(self.columns)
            for row in rows:
                if float(row[column]) <= value:
                    writer.writerow([row.get(name, "") for name in self.columns])


def _format(value: float | int | str) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def plot_curves(
    path: str | Path,
    x: str,
    series: Sequence[str],
    rows: list[dict[str, str]],
    title: str,
    log_y: bool = True,
) -> Path:
    """One line per column of ``series`` against ``x``; empty cells are skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in series:
        points = [(float(r[x]), float(r[name])) for r in rows if r.get(name) not in (None, "")]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, label=name, linewidth=1.2)
    ax.set_xlabel(x)
    if log_y and all(float(r[s]) > 0 for r in rows for s in series if r.get(s) not in (None, "")):
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
