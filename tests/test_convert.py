import numpy as np
import pytest

import crystal_data
from crystal_data.convert import from_atoms, from_structure, to_atoms, to_structure
from crystal_data.errors import RejectedInput
from crystal_data.readers.cif import parse_cif
from crystal_data.record import CrystalRecord
from crystal_data.sample import sample_dir


@pytest.fixture
def zircon_like():
    p = parse_cif((sample_dir() / "mp-2858.cif").read_bytes())
    return CrystalRecord("mp", "mp-2858", p.lattice, p.atomic_numbers, p.frac_coords, labels={"e": -3.7})


def test_pymatgen_round_trip(zircon_like):
    structure = to_structure(zircon_like)
    assert structure.composition.reduced_formula == "ZrO2" and len(structure) == 12
    back = from_structure(structure, "mp", "mp-2858", labels={"e": -3.7})
    np.testing.assert_array_equal(back.lattice, zircon_like.lattice)
    np.testing.assert_array_equal(back.atomic_numbers, zircon_like.atomic_numbers)
    np.testing.assert_allclose(back.frac_coords, zircon_like.frac_coords, atol=1e-12)
    assert back.uid == "mp:mp-2858" and back.formula == "ZrO2" and back.labels == {"e": -3.7}


def test_ase_round_trip(zircon_like):
    atoms = to_atoms(zircon_like)
    assert atoms.get_chemical_formula() == "O8Zr4" and atoms.pbc.all()
    np.testing.assert_allclose(atoms.get_volume(), abs(np.linalg.det(zircon_like.lattice)))
    back = from_atoms(atoms, "mp", "mp-2858")
    np.testing.assert_allclose(back.lattice, zircon_like.lattice)
    np.testing.assert_allclose(back.frac_coords, zircon_like.frac_coords, atol=1e-12)
    np.testing.assert_array_equal(back.atomic_numbers, zircon_like.atomic_numbers)


def test_store_samples_convert(sample_store):
    sample = crystal_data.open(sample_store)[0]
    assert len(to_structure(sample)) == sample.num_nodes == len(to_atoms(sample))


def test_disordered_and_non_periodic_inputs_are_rejected(zircon_like):
    from ase import Atoms
    from pymatgen.core import Lattice, Structure

    disordered = Structure(Lattice.cubic(4), [{"Na": 0.5, "K": 0.5}], [[0, 0, 0]])
    with pytest.raises(RejectedInput, match="disordered"):
        from_structure(disordered, "x", "1")
    with pytest.raises(RejectedInput, match="not periodic"):
        from_atoms(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=np.eye(3) * 5), "x", "2")


def test_record_checks_shapes():
    with pytest.raises(ValueError, match="2 atomic numbers, 1 coordinates"):
        CrystalRecord("x", "1", np.eye(3), [1, 1], [[0, 0, 0]])
