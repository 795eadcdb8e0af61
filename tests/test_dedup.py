"""Deduplication accuracy on real crystals: equivalent rewrites must match, polymorphs must not."""

import warnings

import numpy as np
import polars as pl
import pytest

import crystal_data
from crystal_data.build import BuildSettings, build_from_cif_folder
from crystal_data.dedup import DedupConfig, deduplicate_store
from crystal_data.dedup.config import natural_key
from crystal_data.dedup.fingerprint import structure_fingerprint
from crystal_data.dedup.leakage import find_leaks
from crystal_data.dedup.perturbations import PERTURBATIONS
from crystal_data.readers.cif import parse_cif
from crystal_data.sample import sample_dir

ORIGINALS = ["mp-22862", "mp-560588", "mp-856", "mp-10695", "mp-390", "mp-149", "mp-30", "mp-1265",
             "mp-2534", "mp-661", "mp-1143", "mp-2858", "mp-23193"]  # fmt: skip


def write_cif(path, lattice, numbers, frac):
    from pymatgen.io.cif import CifWriter

    from crystal_data.convert import to_structure
    from crystal_data.record import CrystalRecord

    record = CrystalRecord("x", "x", lattice, numbers, frac)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path.write_text(str(CifWriter(to_structure(record))))


@pytest.fixture(scope="module")
def perturbed_store(tmp_path_factory):
    """13 known crystals and 6 equivalent rewrites of each (91 records)."""
    folder = tmp_path_factory.mktemp("perturbed")
    rng = np.random.default_rng(7)
    for name in ORIGINALS:
        parsed = parse_cif((sample_dir() / f"{name}.cif").read_bytes())
        crystal = (parsed.lattice, parsed.atomic_numbers, parsed.frac_coords)
        (folder / f"{name}.cif").write_bytes((sample_dir() / f"{name}.cif").read_bytes())
        for kind, rewrite in PERTURBATIONS.items():
            write_cif(folder / f"{name}~{kind}.cif", *rewrite(crystal, rng))
    out = tmp_path_factory.mktemp("perturbed_store") / "store"
    build_from_cif_folder(folder, out, BuildSettings(source="mp"), workers=2, progress=False)
    report = deduplicate_store(out, workers=2, progress=False)
    return out, report


def test_every_rewrite_matches_its_original(perturbed_store):
    out, report = perturbed_store
    store = crystal_data.open(out)
    duplicates = store.duplicates
    predicted = set(zip(duplicates["member_uid"].to_list(), duplicates["canonical_uid"].to_list()))
    truth = {(f"mp:{name}~{kind}", f"mp:{name}") for name in ORIGINALS for kind in PERTURBATIONS}
    true_positives = len(predicted & truth)
    recall, precision = true_positives / len(truth), true_positives / len(predicted)
    assert (len(truth), len(predicted), true_positives) == (78, 78, 78)
    assert (recall, precision) == (1.0, 1.0)
    assert report.canonical == 13 and store.records["canonical"].sum() == 13
    assert set(store.records.filter(pl.col("canonical"))["source_id"].to_list()) == set(ORIGINALS)


def test_most_rewrites_need_no_structure_matcher(perturbed_store):
    out, report = perturbed_store
    methods = crystal_data.open(out).duplicates["method"].value_counts().sort("method").rows()
    assert dict(methods) == report.by_method
    # origin shifts, permutations, supercells and settings all share the original's fingerprint; coordinate
    # noise changes free Wyckoff parameters past the fingerprint's rounding in 1 of 13 (noise alone) and
    # 6 of 13 (all rewrites combined) crystals: their standardised cells still agree within the tier-2
    # tolerances (two of them, wurtzite ZnS and AlN, with the polar axis inverted), so no fit is needed
    assert report.by_method == {"fingerprint": 71, "standard_cell": 7}
    assert report.fit_calls == 0
    assert (
        crystal_data.open(out).duplicates.filter(pl.col("method") == "standard_cell")["rms_distance"].max()
        < 0.01
    )
    assert crystal_data.verify_store(out) == []


def test_polymorphs_do_not_match(shared_polymorphs, tmp_path):
    """All 171 SiO2 and TiO2 crystals of the shared set: one pair is merged, mp-972808 into mp-555891
    (both P2_1 SiO2, formation energies 3 meV/atom apart, RMS 0.115): the same structure relaxed
    twice. Every other crystal stays its own group. Of the 187 pairs within (formula, space group)
    buckets, the pre-filter skips 180 whose fit could not succeed (158 with other numbers of sites in
    the primitive cell, 22 with no matching lattice basis): 7 fit calls."""
    out = tmp_path / "store"
    build_from_cif_folder(shared_polymorphs, out, BuildSettings(source="mp"), workers=2, progress=False)
    report = deduplicate_store(out, workers=2, progress=False)
    duplicates = crystal_data.open(out).duplicates
    assert report.records == 171 and report.canonical == 170
    assert duplicates.select("canonical_uid", "member_uid").rows() == [("mp:mp-555891", "mp:mp-972808")]
    assert duplicates["rms_distance"][0] == pytest.approx(0.1148, abs=1e-3)
    assert report.fit_calls == 7
    counts = crystal_data.open(out).manifest["dedup"]["counts"]
    assert counts["fits_skipped_by_prefilter"] == {"lattice": 22, "sites": 158}
    assert counts["all_pairs_within_buckets"] == 187


def test_zinc_blende_and_wurtzite_stay_apart():
    from crystal_data.dedup.grouping import Member, group_bucket

    members = []
    for name in ("mp-10695", "mp-560588"):
        p = parse_cif((sample_dir() / f"{name}.cif").read_bytes())
        members.append(Member(f"mp:{name}", "mp", name, p.lattice, p.frac_coords, p.atomic_numbers))
    result = group_bucket(members, DedupConfig())  # forced into one bucket: they must stay apart
    # 2 against 4 sites in the primitive cells: the pre-filter skips the fit, which could not succeed
    assert result.matches == [] and result.groups == 2
    assert result.fit_calls == 0 and result.tally.skipped == {"sites": 1}


def test_fingerprint_invariances():
    def fingerprint(lattice, numbers, frac):
        return structure_fingerprint(lattice, frac, numbers, 0.1, 5.0)

    p = parse_cif((sample_dir() / "mp-2858.cif").read_bytes())
    crystal = (p.lattice, p.atomic_numbers, p.frac_coords)
    reference = fingerprint(*crystal)
    assert reference is not None and len(reference) == 16
    rng = np.random.default_rng(0)
    for kind in ("origin_shift", "permuted", "supercell", "setting"):  # noise: left to the matcher
        assert fingerprint(*PERTURBATIONS[kind](crystal, rng)) == reference, kind
    other = parse_cif((sample_dir() / "mp-390.cif").read_bytes())
    assert fingerprint(other.lattice, other.atomic_numbers, other.frac_coords) != reference


def test_priority_decides_the_canonical_member():
    config = DedupConfig()
    ranked = sorted(
        [("oqmd", "5"), ("cif", "1"), ("mp", "mp-10"), ("mp", "mp-9")], key=lambda s: config.rank(*s)
    )
    assert ranked == [("mp", "mp-9"), ("mp", "mp-10"), ("oqmd", "5"), ("cif", "1")]
    assert natural_key("mp-9") < natural_key("mp-10")


def test_leakage_against_another_store(perturbed_store, sample_store, tmp_path):
    out, _ = perturbed_store
    report = find_leaks(out, [sample_store], workers=1, progress=False)
    store = crystal_data.open(out)
    # every record is one of the 13 sample crystals or a rewrite of one: all 91 leak
    assert (report.checked, report.leaked) == (91, 91)
    assert store.records["leaked"].all() and store.leakage.height == 91
    assert set(store.leakage["matched_uid"].str.replace("mp:", "").to_list()) == set(ORIGINALS)
    assert crystal_data.verify_store(out) == []


def test_verify_checks_the_duplicate_map(perturbed_store, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    from crystal_data.store.manifest import update_manifest

    copy = tmp_path / "copy"
    shutil.copytree(perturbed_store[0], copy)
    table = pq.read_table(copy / "duplicates.parquet")
    rows = table.to_pylist()
    rows[1]["canonical_uid"] = rows[0]["member_uid"]  # a chain: a member that is also a canonical
    rows[2]["member_uid"] = "mp:not-in-store"
    pq.write_table(table.from_pylist(rows, schema=table.schema), copy / "duplicates.parquet")
    update_manifest(copy, {}, ["duplicates.parquet"], tmp_path / "tmp")
    problems = crystal_data.verify_store(copy)
    assert any("chain" in p for p in problems)
    assert any("'mp:not-in-store' is not a record" in p for p in problems)
