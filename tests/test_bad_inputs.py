"""Every kind of bad input becomes a rejection naming the file and the reason; the build goes on."""

from pathlib import Path

import pytest

import crystal_data
from crystal_data.build import BuildSettings, build_from_cif_folder
from crystal_data.sample import sample_dir

NACL = (sample_dir() / "mp-22862.cif").read_text()
SITES = """loop_
 _atom_site_type_symbol
 _atom_site_label
 _atom_site_symmetry_multiplicity
 _atom_site_fract_x
 _atom_site_fract_y
 _atom_site_fract_z
 _atom_site_occupancy
"""


def p1_cif(name: str, a: float, sites: str, angles: float = 90.0, extra: str = "") -> str:
    return (
        f"data_{name}\n_symmetry_space_group_name_H-M 'P 1'\n"
        f"_cell_length_a {a}\n_cell_length_b {a}\n_cell_length_c {a}\n"
        f"_cell_angle_alpha {angles}\n_cell_angle_beta {angles}\n_cell_angle_gamma {angles}\n"
        f"loop_\n _symmetry_equiv_pos_as_xyz\n 'x, y, z'\n{extra}{SITES}{sites}"
    )


BAD_FILES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "empty_file"),
    "blank": (b"   \n\n", "empty_file"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary_file"),
    "latin1": (NACL.replace("generated using pymatgen", "généré").encode("latin-1"), "not_utf8"),
    "not_a_cif": (b"this is a text file\nwith two lines\n", "parse_error"),
    "truncated_row": (NACL[: NACL.rindex("0.50000000")].encode(), "parse_error"),
    "truncated_loop": (
        (sample_dir() / "mp-560588.cif").read_text().rsplit("\n", 3)[0].encode() + b"\n",
        "composition_mismatch",
    ),
    "unknown_element": (p1_cif("xx", 4.0, "  Xx  Xx0  1  0.0  0.0  0.0  1\n").encode(), "unknown_element"),
    "zero_volume": (
        p1_cif("flat", 4.0, "  Na  Na0  1  0.0  0.0  0.0  1\n", angles=0.0).encode(),
        "degenerate_lattice",
    ),
    "angles_sum": (
        p1_cif("flat2", 4.0, "  Na  Na0  1  0.0  0.0  0.0  1\n", angles=120.0).encode(),
        "degenerate_lattice",
    ),
    "tiny_cell": (p1_cif("tiny", 0.5, "  Na  Na0  1  0.0  0.0  0.0  1\n").encode(), "degenerate_lattice"),
    "partial_occupancy": (
        p1_cif("po", 4.0, "  Na  Na0  1  0.0  0.0  0.0  0.5\n  Cl  Cl1  1  0.5  0.5  0.5  1\n").encode(),
        "partial_occupancy",
    ),
    "overlapping": (
        p1_cif("ov", 4.0, "  Na  Na0  1  0.0  0.0  0.0  1\n  Cl  Cl1  1  0.01  0.0  0.0  1\n").encode(),
        "overlapping_atoms",
    ),
    "two_blocks": ((NACL + "\n" + NACL.replace("data_NaCl", "data_NaCl_2")).encode(), "multiple_blocks"),
    "oganesson": (p1_cif("og", 6.0, "  Og  Og0  1  0.0  0.0  0.0  1\n").encode(), "no_atom_features"),
}


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    for name, (data, _) in BAD_FILES.items():
        (folder / f"{name}.cif").write_bytes(data)
    (folder / "good.cif").write_text(NACL)
    # an atom 25 Å from any other: no neighbour within 8 Å, kept with zero edges
    (folder / "isolated.cif").write_text(p1_cif("iso", 25.0, "  Ar  Ar0  1  0.0  0.0  0.0  1\n"))
    return folder


@pytest.fixture(scope="module")
def bad_store(bad_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("bad_store") / "store"
    report = build_from_cif_folder(bad_folder, out, BuildSettings(source="test"), workers=2, progress=False)
    return report, crystal_data.open(out)


def test_inputs_equal_records_plus_rejections(bad_store):
    report, store = bad_store
    assert report.inputs == len(BAD_FILES) + 2
    assert report.records == 2 and len(store) == 2
    assert report.rejected == len(BAD_FILES) == store.rejected.height
    assert sorted(store.records["source_id"].to_list()) == ["good", "isolated"]


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_each_bad_file_has_its_reason(bad_store, bad_folder, name):
    _, store = bad_store
    row = store.rejected.filter(store.rejected["source_id"] == name).row(0, named=True)
    assert row["reason_code"] == BAD_FILES[name][1], row["reason"]
    assert row["input"] == str(bad_folder / f"{name}.cif")
    assert row["reason"]


def test_reasons_are_specific(bad_store):
    _, store = bad_store
    reasons = dict(zip(store.rejected["source_id"].to_list(), store.rejected["reason"].to_list()))
    assert "occupancy 0.5" in reasons["partial_occupancy"]
    assert "0.0400 Å apart" in reasons["overlapping"]
    assert "'Xx'" in reasons["unknown_element"]
    assert "2 data blocks" in reasons["two_blocks"]
    assert "118" in reasons["oganesson"]
    assert "offset 8" in reasons["binary"]


def test_isolated_atom_has_no_invented_edges(bad_store):
    _, store = bad_store
    index = store.records["source_id"].to_list().index("isolated")
    sample = store[index]
    assert sample.num_nodes == 1 and sample.num_edges == 0
    assert store.manifest["counts"]["edges"] == 2 * 12  # all from the NaCl crystal


def test_missing_and_unlisted_files_in_cgcnn_layout(tmp_path):
    folder = tmp_path / "cgcnn"
    folder.mkdir()
    (folder / "a.cif").write_text(NACL)
    (folder / "extra.cif").write_text(NACL)
    (folder / "id_prop.csv").write_text("a,-1.5\nghost,0.25\n")
    out = tmp_path / "store"
    report = build_from_cif_folder(folder, out, BuildSettings(label_units={"e": "eV"}), progress=False)
    store = crystal_data.open(out)
    assert (report.inputs, report.records, report.rejected) == (3, 2, 1)
    assert store.rejected.row(0, named=True)["reason_code"] == "missing_file"
    labels = dict(zip(store.records["source_id"].to_list(), store.records["e"].to_list()))
    assert labels == {"a": -1.5, "extra": None}


def test_header_line_in_id_prop_is_a_clear_error(tmp_path):
    (tmp_path / "a.cif").write_text(NACL)
    (tmp_path / "id_prop.csv").write_text("id,formation_energy\na,-1.5\n")
    with pytest.raises(ValueError, match="no header line"):
        build_from_cif_folder(tmp_path, tmp_path / "store", progress=False)
