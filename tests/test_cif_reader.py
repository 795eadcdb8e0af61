"""The gemmi fast path agrees with pymatgen on real files; the writers of the 800K corpus all read."""

import json
import warnings

import numpy as np
import pytest

from crystal_data.readers.cif import _decode, _parse_pymatgen, parse_cif
from crystal_data.sample import sample_dir
from tests.conftest import FIXTURES


def assert_same_crystal(fast, reference):
    np.testing.assert_allclose(fast.lattice, reference.lattice, atol=1e-9)
    np.testing.assert_array_equal(fast.atomic_numbers, reference.atomic_numbers)
    np.testing.assert_allclose(fast.frac_coords, reference.frac_coords, atol=1e-9)


def check_fast_path_agrees(paths):
    for path in paths:
        data = path.read_bytes()
        fast = parse_cif(data)
        assert fast.parser == "gemmi", path
        assert_same_crystal(fast, _parse_pymatgen(_decode(data)))


def test_fast_path_agrees_with_pymatgen_on_embedded_sample():
    paths = sorted(sample_dir().glob("*.cif"))
    assert len(paths) == 200
    check_fast_path_agrees(paths)


def test_fast_path_agrees_with_pymatgen_on_shared_set(shared_cifs):
    assert len(shared_cifs) == 332
    check_fast_path_agrees(shared_cifs)


def test_thirds_are_snapped_like_pymatgen():
    text = (
        (sample_dir() / "mp-22862.cif")
        .read_text()
        .replace(
            "Cl  Cl1  1  0.50000000  0.50000000  0.50000000", "Cl  Cl1  1  0.33332000  0.66670000  0.50000000"
        )
    )
    fast = parse_cif(text.encode())
    assert fast.frac_coords[1, 0] == 1 / 3 and fast.frac_coords[1, 1] == 2 / 3
    assert_same_crystal(fast, _parse_pymatgen(text))


@pytest.mark.parametrize("name", [f"{k}.cif" for k in range(9)])
def test_every_corpus_writer_reads_as_the_original_crystal(name):
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

    from crystal_data.convert import to_structure

    provenance = json.loads((FIXTURES / "writers_provenance.json").read_text())[name.removesuffix(".cif")]
    parsed = parse_cif((FIXTURES / "untagged_800k" / name).read_bytes())
    assert parsed.parser == "gemmi"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = Structure.from_file(sample_dir() / f"{provenance['material_id']}.cif")
    ours = to_structure(parsed)
    assert len(ours) == len(original)
    assert StructureMatcher(primitive_cell=False, scale=False).fit(ours, original), provenance


def test_symmetrised_cif_takes_the_pymatgen_path():
    from pymatgen.core import Structure
    from pymatgen.io.cif import CifWriter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        primitive = Structure.from_file(sample_dir() / "mp-22862.cif")
    text = str(CifWriter(primitive, symprec=0.1))
    assert "Fm-3m" in text and "_atom_site_fract_x" in text
    parsed = parse_cif(text.encode())
    assert parsed.parser == "pymatgen"
    assert sorted(parsed.atomic_numbers.tolist()) == [11] * 4 + [17] * 4  # the conventional cell
    assert abs(np.linalg.det(parsed.lattice)) == pytest.approx(4 * primitive.volume, rel=1e-6)


def test_banner_before_data_block_is_ignored():
    text = (sample_dir() / "mp-22862.cif").read_text()
    parsed = parse_cif(("written by some tool\n" + text).encode())
    assert parsed.parser == "gemmi" and parsed.atomic_numbers.tolist() == [11, 17]


def test_site_order_matches_pymatgen_with_noble_gases():
    from tests.test_bad_inputs import p1_cif

    sites = "".join(
        f"  {el}  {el}{k}  1  {0.1 * k:.2f}  {0.05 * k:.2f}  0.0  1\n"
        for k, el in enumerate(["O", "He", "Si", "Ar", "Na", "O"])
    )
    text = p1_cif("mixed", 9.0, sites)
    fast = parse_cif(text.encode())
    assert fast.parser == "gemmi"
    assert_same_crystal(fast, _parse_pymatgen(text))
    assert fast.atomic_numbers.tolist() != [8, 2, 14, 18, 11, 8]  # reordered, as pymatgen does
