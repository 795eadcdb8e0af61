"""The split recipe against an independent implementation of crysgnn-method.md §7.2, and pinned ids."""

from __future__ import annotations

import random

import pytest

from crystal_data.splits import (
    ALIGNN_80_10_10,
    ALIGNN_MP2018,
    SplitScheme,
    canonical_split,
    parse_scheme,
)


def recipe(n: int, n_train: int, n_val: int, n_test: int, seed: int = 123) -> tuple[list, list, list]:
    """The ALIGNN recipe as method.md words it, on the global ``random`` (restored afterwards)."""
    state = random.getstate()
    try:
        ids = list(range(n))
        random.seed(seed)
        random.shuffle(ids)
        return ids[:n_train], ids[-(n_val + n_test) : -n_test], ids[-n_test:]
    finally:
        random.setstate(state)


def drawn(scheme: SplitScheme, n: int) -> tuple[list, list, list]:
    result = scheme.assign(n)
    return result["train"], result["val"], result["test"]


@pytest.mark.parametrize("n", [10, 11, 99, 200, 1234, 55_723])
def test_80_10_10_is_the_recipe(n):
    expected = recipe(n, int(0.8 * n), int(0.1 * n), int(0.1 * n))
    assert drawn(ALIGNN_80_10_10, n) == expected


def test_jarvis_sizes_and_pinned_ids():
    """N = 55,723 (JARVIS-DFT 2021 formation energy): the Matformer/ALIGNN sizes, and ids pinned so
    that a change in Python's random (or in our use of it) is caught."""
    train, val, test = drawn(ALIGNN_80_10_10, 55_723)
    assert (len(train), len(val), len(test)) == (44_578, 5_572, 5_572)
    assert train[:5] == [45770, 5340, 6395, 3105, 3588]
    assert val[:3] == [8987, 5323, 18355]
    assert test[:3] == [37131, 8495, 54026]
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    assert len(set(train) | set(val) | set(test)) == 55_722  # one entry is in no split


def test_mp2018_counts_and_pinned_ids():
    train, val, test = drawn(ALIGNN_MP2018, 69_239)
    assert (train, val, test) == recipe(69_239, 60_000, 5_000, 4_239)
    assert train[:5] == [27831, 58056, 60863, 55915, 55674]
    assert set(train) | set(val) | set(test) == set(range(69_239))  # 60000 + 5000 + 4239: nothing left


def test_counts_larger_than_the_data_are_refused():
    with pytest.raises(ValueError, match=r"only 100 have the target.*'80-10-10'"):
        ALIGNN_MP2018.assign(100)


@pytest.mark.parametrize(
    ("spec", "sizes"),
    [
        ("20-10-70", (11_144, 5_572, 39_006)),
        ("40-10-50", (22_289, 5_572, 27_861)),
        ("60-10-30", (33_433, 5_572, 16_716)),
    ],
)
def test_sparse_schemes_use_the_same_shuffle(spec, sizes):
    scheme = parse_scheme(spec, ALIGNN_80_10_10)
    train, val, test = drawn(scheme, 55_723)
    assert (len(train), len(val), len(test)) == sizes
    assert (train, val, test) == recipe(55_723, *sizes)
    paper_train, _, paper_test = drawn(ALIGNN_80_10_10, 55_723)
    # The same shuffle: a sparse train set is a prefix of the paper's, its test set ends with the paper's.
    assert train == paper_train[: len(train)]
    assert test[-len(paper_test) :] == paper_test


def test_custom_ratios_and_seeds():
    scheme = parse_scheme("30-10-60", ALIGNN_80_10_10, seed=7)
    assert scheme.name == "30-10-60-seed7"
    assert drawn(scheme, 500) == recipe(500, 150, 50, 300, seed=7)
    assert drawn(scheme, 500) != drawn(parse_scheme("30-10-60", ALIGNN_80_10_10), 500)
    assert parse_scheme("n100-20-30-seed5", ALIGNN_80_10_10) == SplitScheme(100, 20, 30, seed=5)
    assert parse_scheme(None, ALIGNN_MP2018, seed=1).name == "alignn-seed1"
    assert parse_scheme("alignn-seed1", ALIGNN_80_10_10).name == "alignn-seed1"
    assert SplitScheme(0.125, 0.1, 0.1).name == "12.5-10-10"


def test_no_test_set_keeps_the_splits_apart():
    """The recipe's ids[-0:] is every id; the implementation gives the empty test set instead."""
    train, val, test = drawn(SplitScheme(0.9, 0.1, 0.0), 50)
    assert (len(train), len(val), test) == (45, 5, [])
    assert not set(train) & set(val)


@pytest.mark.parametrize(
    ("bad", "message"),
    [((0.8, 0.3, 0.1), "more than 1"), ((0.8, 10, 0.1), "not a mix"), ((0.0, 0.1, 0.1), "positive")],
)
def test_invalid_schemes(bad, message):
    with pytest.raises(ValueError, match=message):
        SplitScheme(*bad)


def test_unknown_scheme_lists_the_forms():
    with pytest.raises(ValueError, match=r"unknown split scheme '80/10/10'.*20-10-70, 40-10-50, 60-10-30"):
        parse_scheme("80/10/10", ALIGNN_80_10_10)


def test_split_names_and_aliases():
    assert [canonical_split(n) for n in ("train", "val", "validation", "VALIDATION", "test", "all")] == [
        "train",
        "val",
        "val",
        "val",
        "test",
        "all",
    ]
    with pytest.raises(
        ValueError, match=r"unknown split 'dev'; valid splits: train, val \(alias: validation\)"
    ):
        canonical_split("dev")
