"""Helpers shared by the benchmarks: the real data, Markdown tables, the machine."""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path


def resolve_data(path: Path, cache: Path) -> Path:
    """The folder holding the CIFs: ``path`` itself, or the tarball extracted under ``cache``."""
    if path.is_dir():
        return _cif_root(path)
    if path.is_file() and tarfile.is_tarfile(path):
        return _cif_root(_extract(path, cache))
    sys.exit(
        f"error: no benchmark data at {path}\n"
        f"pass --data with the tarball (mp-formation-energy-33k.tar.gz) or an extracted folder of CIFs"
    )


def _cif_root(folder: Path) -> Path:
    if _holds_cifs(folder):
        return folder
    children = [child for child in folder.iterdir() if child.is_dir() and _holds_cifs(child)]
    if len(children) == 1:
        return children[0]
    sys.exit(f"error: {folder} holds neither id_prop.csv nor *.cif files (nor one folder that does)")


def _holds_cifs(folder: Path) -> bool:
    return (folder / "id_prop.csv").exists() or any(folder.glob("*.cif"))


def _extract(tarball: Path, cache: Path) -> Path:
    """Extract once: ``cache/<name>/`` is complete exactly when its ``.complete`` marker exists."""
    target = cache / tarball.name.removesuffix(".tar.gz").removesuffix(".tgz")
    if (target / ".complete").exists():
        return target
    print(f"extracting {tarball} to {target} ...", file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=cache))
    with tarfile.open(tarball) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(partial, filter="data")
        else:  # Python without extraction filters
            archive.extractall(partial)
    (partial / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def publish(report: str, out_md: Path | None) -> int:
    """Print the Markdown report and, with ``--out-md``, also write it there; the exit status 0."""
    print(report)
    if out_md is not None:
        out_md.write_text(report + "\n", encoding="utf-8")
    return 0


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
