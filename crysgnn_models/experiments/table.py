"""A table: rows (dataset, target, split), columns (student, alpha), seeds, and the paper's numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import yaml

from crysgnn_models.distill.data import DataRef


@dataclass(frozen=True)
class Row:
    """One dataset, target and split scheme. The DFT-plus-experiment rows add ``test_on`` (test on
    another dataset), ``train_with`` (more training data) or ``init_from`` (fine-tune each run from
    the same column and seed of an earlier row): :class:`~crysgnn_models.distill.config.DistillConfig`."""

    label: str
    data: str
    target: str
    scheme: str | None = None
    unit: str | None = None
    train_with: tuple[dict, ...] = ()
    test_on: dict | None = None
    init_from: str | None = None

    @property
    def slug(self) -> str:
        return slug(self.label)


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


def slug(label: str) -> str:
    """A row label as a folder name: ``MP band gap`` -> ``mp-band-gap``."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def select(table: Table, rows: list[str] | None = None, columns: list[str] | None = None) -> Table:
    """``table`` with only the rows (labels or folder names) and columns (keys: ``cgcnn``, ``cgcnn-D``
    ...) named, in the table's order; ``None`` keeps all. Unknown names are a ``ValueError``."""
    if rows:
        known = {name for row in table.rows for name in (row.label, row.slug)}
        if unknown := [name for name in rows if name not in known]:
            listed = ", ".join(row.slug for row in table.rows)
            raise ValueError(f"table {table.name} has no row {unknown[0]!r}; its rows: {listed}")
        table = replace(table, rows=tuple(r for r in table.rows if r.label in rows or r.slug in rows))
    if columns:
        keys = [column.key for column in table.columns]
        if unknown := [name for name in columns if name not in keys]:
            raise ValueError(
                f"table {table.name} has no column {unknown[0]!r}; its columns: {', '.join(keys)}"
            )
        table = replace(table, columns=tuple(c for c in table.columns if c.key in columns))
    return table


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
        rows = tuple(Row(**{**row, "train_with": tuple(row.get("train_with") or ())}) for row in raw["rows"])
        columns = tuple(Column(**column) for column in raw["columns"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"{name_or_path}: malformed table ({error})") from error
    labels = [row.label for row in rows]
    if len(set(labels)) != len(labels) or len({c.key for c in columns}) != len(columns):
        raise ValueError(f"{name_or_path}: row labels and column keys must be unique")
    for k, row in enumerate(rows):
        if row.init_from is not None and row.init_from not in labels[:k]:
            raise ValueError(
                f"{name_or_path}: row {row.label!r} starts from {row.init_from!r}, not an earlier row"
            )
        try:
            for ref in row.train_with:
                DataRef.from_dict(ref, split="train")
            if row.test_on is not None:
                DataRef.from_dict(row.test_on, split="all")
        except (ValueError, TypeError) as error:
            raise ValueError(f"{name_or_path}: row {row.label!r}: {error}") from error
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
