"""Train/validation/test splits: the ALIGNN recipe, exactly, and the schemes built on it.

The recipe (``alignn/data.py::get_id_train_val_test``, crysgnn-method.md §7.2), over the N entries
that have the target, in the upstream file's order::

    ids = list(range(N)); random.seed(123); random.shuffle(ids)
    train = ids[:n_train]; val = ids[-(n_val + n_test):-n_test]; test = ids[-n_test:]

with ``n_train = int(0.8 * N)`` and ``n_val = n_test = int(0.1 * N)`` (or fixed counts: MP 2018 uses
60000/5000/4239). The sparse schemes (``20-10-70`` ...) take other fractions from the same shuffle.
A scheme only says how to draw; the drawn id lists are stored with the dataset
(:mod:`crystal_data.datasets.split_files`), so a split never depends on this code again.
"""

from __future__ import annotations

import numbers
import random
import re
from dataclasses import dataclass

ALIGNN_SEED = 123
SPLIT_NAMES = ("train", "val", "test")
ALL = "all"
"""The split name for every entry that has the target."""
_ALIASES = {"validation": "val"}
_PERCENTS = re.compile(r"(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)(?:-seed(\d+))?")
_COUNTS = re.compile(r"n(\d+)-(\d+)-(\d+)(?:-seed(\d+))?")


def canonical_split(name: str) -> str:
    """``train``, ``val``, ``test`` or ``all``; ``validation`` is ``val``. Anything else is a
    ``ValueError`` listing the valid names."""
    key = name.strip().lower() if isinstance(name, str) else name
    key = _ALIASES.get(key, key)
    if key in SPLIT_NAMES or key == ALL:
        return key
    raise ValueError(f"unknown split {name!r}; valid splits: train, val (alias: validation), test, all")


@dataclass(frozen=True)
class SplitScheme:
    """How to draw train/val/test from N entries with the ALIGNN shuffle.

    ``train``, ``val`` and ``test`` are all fractions of N (floats, sizes ``int(fraction * N)`` as
    ALIGNN computes them) or all counts (ints). ``name`` names the stored id lists; it defaults to
    ``20-10-70`` (percentages), ``n60000-5000-4239`` (counts), with ``-seedK`` when the seed is not 123.
    """

    train: float | int
    val: float | int
    test: float | int
    seed: int = ALIGNN_SEED
    name: str = ""

    def __post_init__(self) -> None:
        parts = (self.train, self.val, self.test)
        if any(isinstance(p, bool) or not isinstance(p, numbers.Real) for p in parts):
            raise ValueError(f"split sizes must be numbers, got {parts}")
        kinds = {isinstance(p, numbers.Integral) for p in parts}
        if len(kinds) != 1:
            raise ValueError(f"split sizes {parts}: give three fractions or three counts, not a mix")
        as_type = int if kinds == {True} else float  # numpy scalars become plain Python numbers
        parts = tuple(as_type(p) for p in parts)
        for field_name, value in zip(("train", "val", "test"), parts):
            object.__setattr__(self, field_name, value)
        if any(p < 0 for p in parts) or self.train <= 0:
            raise ValueError(f"split sizes {parts}: the train size must be positive and none negative")
        if self.is_fractions and sum(parts) > 1 + 1e-9:
            raise ValueError(f"split fractions {parts} add up to more than 1")
        if not self.name:
            object.__setattr__(self, "name", self._default_name())
        if "/" in self.name or self.name.startswith("."):
            raise ValueError(f"bad split scheme name {self.name!r}")

    @property
    def is_fractions(self) -> bool:
        return isinstance(self.train, float)

    def _default_name(self) -> str:
        if self.is_fractions:
            base = "-".join(format(round(p * 100, 6), "g") for p in (self.train, self.val, self.test))
        else:
            base = f"n{self.train}-{self.val}-{self.test}"
        return base if self.seed == ALIGNN_SEED else f"{base}-seed{self.seed}"

    def sizes(self, n: int) -> tuple[int, int, int]:
        """(n_train, n_val, n_test) for ``n`` entries; ``ValueError`` when fixed counts exceed ``n``."""
        if self.is_fractions:  # exactly ALIGNN's expression: int(ratio * total_size)
            return int(self.train * n), int(self.val * n), int(self.test * n)
        if self.train + self.val + self.test > n:
            raise ValueError(
                f"split {self.name}: {self.train} + {self.val} + {self.test} entries asked for, but only "
                f"{n} have the target; choose a fraction scheme such as '80-10-10'"
            )
        return int(self.train), int(self.val), int(self.test)

    def assign(self, n: int) -> dict[str, list[int]]:
        """Positions 0..n-1 drawn into ``train``, ``val`` and ``test``, each in the recipe's order."""
        n_train, n_val, n_test = self.sizes(n)
        ids = list(range(n))
        random.Random(self.seed).shuffle(ids)  # the same stream as random.seed(seed); random.shuffle(ids)
        # ids[n - n_test:] is the recipe's ids[-n_test:]; written this way it stays right for n_test == 0,
        # where the recipe's negative slice would return every id.
        drawn = {
            "train": ids[:n_train],
            "val": ids[n - n_test - n_val : n - n_test],
            "test": ids[n - n_test :],
        }
        seen = set(drawn["train"])
        for name in ("val", "test"):
            if seen & set(drawn[name]):
                raise AssertionError(f"split {self.name}: {name} overlaps an earlier split")
            seen |= set(drawn[name])
        return drawn

    def to_dict(self) -> dict:
        return {"name": self.name, "train": self.train, "val": self.val, "test": self.test, "seed": self.seed}


ALIGNN_80_10_10 = SplitScheme(0.8, 0.1, 0.1, name="alignn")
"""ALIGNN's default 80/10/10 (JARVIS-DFT and any store)."""
ALIGNN_MP2018 = SplitScheme(60000, 5000, 4239, name="alignn")
"""ALIGNN's MP 2018.6.1 split (``train_props.py``): fixed counts adding up to 69,239."""
SPARSE_SCHEMES = ("20-10-70", "40-10-50", "60-10-30")
"""The sparse-data splits: the same shuffle, smaller training fractions."""


def parse_scheme(spec: str | SplitScheme | None, paper: SplitScheme, seed: int | None = None) -> SplitScheme:
    """A scheme from ``spec``: ``None`` or ``"alignn"`` (the dataset's paper split ``paper``),
    ``"20-10-70"`` (percentages), ``"n60000-5000-4239"`` (counts), each optionally ending in
    ``-seedK``, or a :class:`SplitScheme`. ``seed`` overrides the seed (and renames the scheme)."""
    if isinstance(spec, SplitScheme):
        scheme = spec
    elif spec is None or spec == paper.name:
        scheme = paper
    elif match := re.fullmatch(re.escape(paper.name) + r"-seed(\d+)", spec):
        scheme = paper
        seed = int(match.group(1)) if seed is None else seed
    elif match := _PERCENTS.fullmatch(spec):
        train, val, test, given = match.groups()
        fractions = (float(train) / 100, float(val) / 100, float(test) / 100)
        scheme = SplitScheme(*fractions, seed=int(given) if given else ALIGNN_SEED)
    elif match := _COUNTS.fullmatch(spec):
        train, val, test, given = match.groups()
        scheme = SplitScheme(int(train), int(val), int(test), seed=int(given) if given else ALIGNN_SEED)
    else:
        raise ValueError(
            f"unknown split scheme {spec!r}; use {paper.name!r} (the paper's split), one of "
            f"{', '.join(SPARSE_SCHEMES)}, 'TRAIN-VAL-TEST' percentages, 'nTRAIN-VAL-TEST' counts, "
            "optionally ending in '-seedK', or a SplitScheme"
        )
    if seed is None or seed == scheme.seed:
        return scheme
    base = scheme.name.split("-seed")[0]
    renamed = base if seed == ALIGNN_SEED else f"{base}-seed{seed}"
    return SplitScheme(scheme.train, scheme.val, scheme.test, seed=seed, name=renamed)
