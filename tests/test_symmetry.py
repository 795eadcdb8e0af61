import warnings

import numpy as np
import pytest

from crystal_data.readers.cif import parse_cif
from crystal_data.sample import sample_dir
from crystal_data.symmetry import SymmetryConfig, analyze_symmetry, spglib_version

KNOWN = [
    ("mp-22862", 225, "cubic"),  # rock salt NaCl
    ("mp-560588", 186, "hexagonal"),  # wurtzite ZnS
    ("mp-661", 186, "hexagonal"),  # wurtzite AlN
    ("mp-856", 136, "tetragonal"),  # rutile-type SnO2 (cassiterite)
    ("mp-10695", 216, "cubic"),  # zinc blende ZnS
    ("mp-390", 141, "tetragonal"),  # anatase TiO2
    ("mp-149", 227, "cubic"),  # diamond Si
    ("mp-30", 225, "cubic"),  # fcc Cu
    ("mp-1143", 167, "trigonal"),  # corundum Al2O3
    ("mp-2858", 14, "monoclinic"),  # baddeleyite ZrO2
]


def parsed(name):
    return parse_cif((sample_dir() / f"{name}.cif").read_bytes())


@pytest.mark.parametrize(("name", "number", "system"), KNOWN)
def test_known_space_groups(name, number, system):
    p = parsed(name)
    result = analyze_symmetry(p.lattice, p.frac_coords, p.atomic_numbers, SymmetryConfig())
    assert (result.spacegroup_number, result.crystal_system, result.error) == (number, system, None)


def test_agrees_with_pymatgen_spacegroup_analyzer():
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from crystal_data.convert import to_structure

    names = sorted(p.stem for p in sample_dir().glob("*.cif"))[::4]
    for name in names:
        p = parsed(name)
        ours = analyze_symmetry(p.lattice, p.frac_coords, p.atomic_numbers, SymmetryConfig())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analyzer = SpacegroupAnalyzer(to_structure(p), symprec=0.1, angle_tolerance=5)
        assert ours.spacegroup_number == analyzer.get_space_group_number(), name
        assert ours.crystal_system == analyzer.get_crystal_system(), name
    assert len(names) == 50


def test_tolerance_is_configuration():
    p = parsed("mp-22862")
    frac = p.frac_coords.copy()
    frac[1] += 0.004  # Cl moved ~0.03 Å off the inversion centre
    loose = analyze_symmetry(p.lattice, frac, p.atomic_numbers, SymmetryConfig(symprec=0.1))
    tight = analyze_symmetry(p.lattice, frac, p.atomic_numbers, SymmetryConfig(symprec=0.01))
    assert loose.spacegroup_number == 225
    assert tight.spacegroup_number == 160 and tight.crystal_system == "trigonal"


def test_failure_is_reported_not_guessed():
    result = analyze_symmetry(np.eye(3) * 4, np.zeros((2, 3)), np.array([11, 11]), SymmetryConfig())
    assert result.spacegroup_number is None and result.crystal_system is None
    assert result.error.startswith("spglib")


def test_config_records_spglib_version():
    import spglib

    assert SymmetryConfig().to_dict() == {
        "symprec": 0.1,
        "angle_tolerance": 5.0,
        "spglib_version": spglib.__version__,
    }
    assert spglib_version() == spglib.__version__
