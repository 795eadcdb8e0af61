"""Which crystals a run trains, selects and is tested on: one dataset's splits, optionally with more
training data from other datasets and the test set taken from another (the DFT-plus-experiment
protocol, docs/models.md §6)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import crystal_data
from crystal_data.dataset import CrystalDataset


@dataclass(frozen=True)
class DataRef:
    """One split of one target of a dataset (a name of ``crystal_data.load`` or a store path)."""

    data: str
    target: str
    split: str = "train"
    scheme: str | None = None
    split_seed: int | None = None

    @classmethod
    def from_dict(cls, value: dict, *, split: str) -> DataRef:
        if not isinstance(value, dict):
            raise ValueError(f"a dataset reference is a mapping with 'data' and 'target', got {value!r}")
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown or not {"data", "target"} <= set(value):
            raise ValueError(
                f"a dataset reference needs 'data' and 'target' (optional: split, scheme, split_seed); "
                f"got {sorted(value)}"
            )
        return cls(**{"split": split, **value})

    def to_dict(self) -> dict:
        return asdict(self)

    def load(self, offline: bool | None) -> CrystalDataset:
        return crystal_data.load(
            self.data, split=self.split, target=self.target, scheme=self.scheme, seed=self.split_seed,
            offline=offline,
        )  # fmt: skip


@dataclass(frozen=True)
class RunData:
    """``train``: the run's own training split first, then each ``train_with`` dataset; ``val`` selects
    the model; ``test`` is scored once."""

    train: tuple[CrystalDataset, ...]
    val: CrystalDataset
    test: CrystalDataset

    @property
    def unit(self) -> str | None:
        return self.train[0].unit

    def sizes(self) -> dict[str, int]:
        return {"train": sum(len(ds) for ds in self.train), "val": len(self.val), "test": len(self.test)}


def primary_ref(config, split: str) -> DataRef:
    """``split`` of the run's own dataset (``config.data``, ``target``, ``scheme``, ``split_seed``)."""
    return DataRef(config.data, config.target, split, config.scheme, config.split_seed)


def test_ref(config) -> DataRef:
    """What the run is tested on: ``config.test_on`` (all of it unless it names a split) or the test
    split of its own dataset."""
    if config.test_on:
        return DataRef.from_dict(config.test_on, split="all")
    return primary_ref(config, "test")


def train_refs(config) -> list[DataRef]:
    """The training data: the run's own train split, then ``config.train_with`` (their train splits
    unless they name another)."""
    return [primary_ref(config, "train")] + [DataRef.from_dict(v, split="train") for v in config.train_with]


def load_run_data(config) -> RunData:
    """Load every split a :class:`~crysgnn_models.distill.config.DistillConfig` names; a clear error
    when one is empty or when the targets' units differ."""
    train = tuple(ref.load(config.offline) for ref in train_refs(config))
    val = primary_ref(config, "val").load(config.offline)
    test = test_ref(config).load(config.offline)
    units = {f"{ds.name} {ds.target}": ds.unit for ds in (*train, val, test)}
    if len({unit for unit in units.values() if unit is not None}) > 1:
        listed = ", ".join(f"{name} in {unit}" for name, unit in units.items())
        raise ValueError(f"the datasets of one run must share the target's unit: {listed}")
    for role, parts in (("train", train), ("val", (val,)), ("test", (test,))):
        for ds in parts:
            if len(ds) == 0:
                raise ValueError(
                    f"the {role} data ({ds.name}, {ds.target}, split {ds.split}) is empty: choose a split "
                    "scheme that leaves it at least one crystal"
                )
    return RunData(train, val, test)
