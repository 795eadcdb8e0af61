"""Small, strict conversions shared by the source parsers."""

from __future__ import annotations

import math

import numpy as np

_SYMBOLS: dict[str, int] | None = None


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol (``"Fe"``); ``ValueError`` for anything else."""
    global _SYMBOLS
    if _SYMBOLS is None:
        from pymatgen.core.periodic_table import Element

        _SYMBOLS = {e.symbol: e.Z for e in Element if e.Z <= 118}
    try:
        return _SYMBOLS[symbol.strip()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown element symbol {symbol!r}") from None


def lattice_matrix(rows: object) -> np.ndarray:
    """A 3x3 float lattice (rows = vectors) from nested lists; ``ValueError`` otherwise."""
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.shape != (3, 3):
        raise ValueError(f"lattice has shape {matrix.shape}, not (3, 3)")
    return matrix


def finite_or_none(value: object) -> float | None:
    """A label value as a finite float, or ``None`` for missing ones (``None``, ``"na"``, NaN, text)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
