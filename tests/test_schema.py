import json

import pyarrow as pa
import pytest

from crystal_data.schema import CRYSTAL_SYSTEMS, crystal_system_of, label_units_of, make_uid, record_schema


@pytest.mark.parametrize(
    ("number", "system"),
    [
        (1, "triclinic"),
        (2, "triclinic"),
        (3, "monoclinic"),
        (15, "monoclinic"),
        (16, "orthorhombic"),
        (74, "orthorhombic"),
        (75, "tetragonal"),
        (142, "tetragonal"),
        (143, "trigonal"),
        (167, "trigonal"),
        (168, "hexagonal"),
        (194, "hexagonal"),
        (195, "cubic"),
        (230, "cubic"),
    ],
)
def test_crystal_system_boundaries(number, system):
    assert crystal_system_of(number) == system


def test_crystal_system_classes_follow_crysgnn_order():
    assert CRYSTAL_SYSTEMS.index("triclinic") == 0
    assert CRYSTAL_SYSTEMS.index("trigonal") == 4
    assert CRYSTAL_SYSTEMS.index("cubic") == 6


@pytest.mark.parametrize("number", [0, 231, -5])
def test_crystal_system_rejects_impossible_numbers(number):
    with pytest.raises(ValueError, match="outside 1-230"):
        crystal_system_of(number)


def test_uid_is_source_and_id():
    assert make_uid("mp", "mp-149") == "mp:mp-149"
    with pytest.raises(ValueError):
        make_uid("m:p", "1")
    with pytest.raises(ValueError):
        make_uid("mp", "")


def test_label_units_live_in_schema_metadata():
    schema = record_schema({"formation_energy_per_atom": "eV/atom", "band_gap": "eV"})
    assert schema.field("band_gap").type == pa.float64()
    assert label_units_of(schema) == {"formation_energy_per_atom": "eV/atom", "band_gap": "eV"}
    assert json.loads(schema.metadata[b"crystal_data.label_units"])["band_gap"] == "eV"
    assert schema.field("lattice").type == pa.list_(pa.list_(pa.float64(), 3), 3)


def test_label_names_cannot_shadow_record_fields():
    with pytest.raises(ValueError, match="collide"):
        record_schema({"formula": ""})
