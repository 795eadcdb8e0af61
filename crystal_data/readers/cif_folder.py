"""Discover the crystals in a folder of CIF files, in one of three layouts.

- ``cgcnn``: ``id_prop.csv`` without header (``id,label[,label...]``) next to ``<id>.cif`` files.
  Ids listed without a file become ``missing_file`` rejections; CIFs not listed are kept, unlabelled.
- ``untagged-800k``: integer-named CIFs (``0.cif``, ``1.cif`` ...), the CrysGNN pretraining corpus
  layout; ordered numerically.
- ``plain``: any ``*.cif`` files; ordered by name.

``auto`` picks ``cgcnn`` when ``id_prop.csv`` exists, else ``untagged-800k`` when every name is an
integer, else ``plain``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

LAYOUTS = ("auto", "cgcnn", "untagged-800k", "plain")


@dataclass(frozen=True)
class CifInput:
    """One input of a build: a CIF path, the id it will be known by, and its labels."""

    path: str
    source_id: str
    labels: dict[str, float | None] = field(default_factory=dict)

    def plan_key(self) -> list:
        """Identity in a build plan."""
        return [self.path, self.source_id, self.labels]


@dataclass(frozen=True)
class CifFolder:
    folder: Path
    layout: str
    inputs: list[CifInput]
    label_names: list[str]


def scan_cif_folder(
    folder: str | os.PathLike, layout: str = "auto", label_names: Sequence[str] = ()
) -> CifFolder:
    """List a folder's inputs in a deterministic order. ``label_names`` names the ``id_prop.csv``
    columns after the id (default: ``target``, ``target_1`` ...)."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    cifs = {p.stem: p for p in _cif_files(root)}
    id_prop = root / "id_prop.csv"
    if layout == "auto":
        if id_prop.exists():
            layout = "cgcnn"
        elif cifs and all(stem.isdigit() for stem in cifs):
            layout = "untagged-800k"
        else:
            layout = "plain"
    if layout == "cgcnn":
        inputs, names = _cgcnn_inputs(id_prop, cifs, label_names)
        return CifFolder(root, layout, inputs, names)
    if label_names:
        raise ValueError(f"labels {list(label_names)} given but the {layout} layout has no id_prop.csv")
    if layout == "untagged-800k":
        bad = [stem for stem in cifs if not stem.isdigit()]
        if bad:
            raise ValueError(f"{root}: untagged-800k layout expects integer names, found {bad[0]!r}.cif")
        stems = sorted(cifs, key=int)
    else:
        stems = sorted(cifs)
    return CifFolder(root, layout, [CifInput(str(cifs[s]), s) for s in stems], [])


def _cif_files(root: Path) -> list[Path]:
    with os.scandir(root) as entries:
        return [Path(e.path) for e in entries if e.name.lower().endswith(".cif") and e.is_file()]


def _cgcnn_inputs(
    id_prop: Path, cifs: dict[str, Path], label_names: Sequence[str]
) -> tuple[list[CifInput], list[str]]:
    with open(id_prop, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if not rows:
        raise ValueError(f"{id_prop}: empty")
    width = len(rows[0]) - 1
    names = list(label_names) or (["target"] + [f"target_{k}" for k in range(1, width)])
    if len(names) != width:
        raise ValueError(f"{id_prop}: {width} label columns but {len(names)} label names {names}")
    inputs: list[CifInput] = []
    seen: set[str] = set()
    for line_no, row in enumerate(rows, start=1):
        if len(row) != width + 1:
            raise ValueError(f"{id_prop}:{line_no}: expected {width + 1} columns, found {len(row)}")
        source_id = row[0].strip()
        labels = {name: _parse_label(value, id_prop, line_no) for name, value in zip(names, row[1:])}
        if source_id in seen:
            raise ValueError(f"{id_prop}:{line_no}: id {source_id!r} is listed twice")
        seen.add(source_id)
        path = cifs.get(source_id, id_prop.parent / f"{source_id}.cif")
        inputs.append(CifInput(str(path), source_id, labels))
    unlisted = sorted(set(cifs) - seen)
    inputs.extend(CifInput(str(cifs[s]), s, dict.fromkeys(names)) for s in unlisted)
    return inputs, names


def _parse_label(value: str, id_prop: Path, line_no: int) -> float | None:
    text = value.strip()
    if text.lower() in ("", "na", "nan", "none", "null"):
        return None
    try:
        number = float(text)
    except ValueError:
        hint = " (the CGCNN layout has no header line)" if line_no == 1 else ""
        raise ValueError(f"{id_prop}:{line_no}: label {text!r} is not a number{hint}") from None
    return None if math.isnan(number) else number
