"""A table: rows (dataset, target, split), columns (student, alpha), seeds, and the paper's numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Row:
    label: str
    data: str
    target: str
    scheme: str | None = None
    unit: str | None = None

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.label.lower()).strip("-")


@dataclass(frozen=True)
class Column:
    student: str
    alpha: float = 0.0

    @property
    def key(self) -> str:
        """``cgcnn`` (vanilla), ``cgcnn-D`` (distilled), as in the paper's headers."""
        return f"{self.student}-D" if self.alpha > 0 else self.student


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    training: dict = field(default_factory=dict)
    """Settings for every run: ``epochs``, ``batch_size``, ``lr``, ``patience``, ``student_kwargs`` ..."""
    paper: dict = field(default_factory=dict)
    """The paper's MAE: ``{row label: {column key: value}}``."""
    note: str = ""


def bundled_tables() -> list[str]:
    folder = resources.files("crysgnn_models.experiments").joinpath("tables")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_table(name_or_path: str | Path) -> Table:
    """A bundled table by name (:func:`bundled_tables`) or a YAML file of the same form."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such table file")
        text = path.read_text()
    else:
        known = bundled_tables()
        if str(name_or_path) not in known:
            raise ValueError(f"unknown table {name_or_path!r}; bundled: {', '.join(known)}, or a YAML path")
        text = (
            resources.files("crysgnn_models.experiments").joinpath(f"tables/{name_or_path}.yaml").read_text()
        )
    raw = yaml.safe_load(text)
    try:
        rows = tuple(Row(**row) for row in raw["rows"])
        columns = tuple(Column(**column) for column in raw["columns"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"{name_or_path}: malformed table ({error})") from error
    labels = [row.label for row in rows]
    if len(set(labels)) != len(labels) or len({c.key for c in columns}) != len(columns):
        raise ValueError(f"{name_or_path}: row labels and column keys must be unique")
    return Table(
        name=raw.get("name", path.stem),
        title=raw.get("title", ""),
        rows=rows,
        columns=columns,
        seeds=tuple(raw.get("seeds", (0, 1, 2))),
        training=dict(raw.get("training") or {}),
        paper=dict(raw.get("paper") or {}),
        note=raw.get("note", ""),
    )
