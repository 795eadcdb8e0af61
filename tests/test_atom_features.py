import json

import numpy as np
import pytest

from crystal_data.graphs.atom_features import atom_feature_table, has_features
from tests.conftest import SHARED_DATA


def test_table_equals_reference_atom_init():
    reference_file = SHARED_DATA / "atom_init.json"
    if not reference_file.exists():
        pytest.skip(f"{reference_file} not present")
    reference = json.loads(reference_file.read_text())
    table = atom_feature_table()
    assert sorted(int(k) for k in reference) == list(range(1, 101))
    for key, vector in reference.items():
        np.testing.assert_array_equal(table[int(key)], np.array(vector, dtype=np.float32))


def test_table_layout():
    table = atom_feature_table()
    assert table.shape == (101, 92)
    assert not table[0].any()
    ones = table[1:].sum(axis=1)
    assert ones.min() >= 6 and ones.max() <= 9
    # segment 'group' (cols 0-18): He (Z=2) is in group 18, Na (Z=11) in group 1
    assert table[2, 18] == 1 and table[11, 1] == 1
    # segment 'period' (cols 19-25): period p is column 18 + p
    assert table[11, 18 + 3] == 1 and table[1, 18 + 1] == 1


def test_feature_coverage():
    assert has_features(np.array([1, 100])).all()
    assert not has_features(np.array([0, 101, 118])).any()
