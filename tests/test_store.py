"""A store built from the embedded sample: contents, random access, iteration, verification."""

import json
import shutil

import numpy as np
import polars as pl
import pytest

import crystal_data
from crystal_data.build import BuildConflict, build_from_cif_folder
from crystal_data.graphs import GraphConfig, nearest_neighbor_graph
from crystal_data.readers.cif import parse_cif
from crystal_data.sample import sample_dir
from tests.conftest import sample_settings


@pytest.fixture(scope="module")
def store(sample_store):
    return crystal_data.open(sample_store)


def test_counts_and_manifest(store):
    manifest = store.manifest
    assert len(store) == 200
    assert manifest["counts"]["inputs"] == 200 and manifest["counts"]["rejected"] == 0
    assert manifest["sources"] == {"mp": {"version": "cgcnn-2018", "records": 200}}
    assert manifest["labels"] == {"formation_energy_per_atom": "eV/atom"}
    assert manifest["symmetry"]["symprec"] == 0.1 and manifest["symmetry"]["spglib_version"]
    assert manifest["graphs"] == {GraphConfig().hash: GraphConfig().to_dict()}
    assert set(manifest["libraries"]) >= {"python", "pymatgen", "spglib", "gemmi", "zarr", "pyarrow"}
    assert manifest["parsers"] == {"gemmi": 200}
    assert manifest["counts"]["nodes"] == int(store.records["nsites"].sum())
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())


def test_records_frame(store, sample_labels):
    records = store.records
    assert isinstance(records, pl.DataFrame) and records.height == 200
    assert records.schema["lattice"] == pl.Array(pl.Float64, (3, 3))
    assert records.schema["frac_coords"] == pl.List(pl.Array(pl.Float64, 3))
    assert records.schema["atomic_numbers"] == pl.List(pl.UInt8)
    assert records["uid"].n_unique() == 200
    nacl = records.filter(pl.col("source_id") == "mp-22862").row(0, named=True)
    assert nacl["uid"] == "mp:mp-22862" and nacl["formula"] == "NaCl" and nacl["nsites"] == 2
    assert nacl["spacegroup_number"] == 225 and nacl["crystal_system"] == "cubic"
    assert nacl["formation_energy_per_atom"] == sample_labels["mp-22862"]
    assert nacl["origin"] == str(sample_dir() / "mp-22862.cif")
    labels = dict(zip(records["source_id"].to_list(), records["formation_energy_per_atom"].to_list()))
    assert labels == sample_labels


def test_item_matches_a_fresh_computation(store):
    for index in (0, 57, 199):
        sample = store[index]
        record = store.records.row(index, named=True)
        parsed = parse_cif((sample_dir() / f"{record['source_id']}.cif").read_bytes())
        graph = nearest_neighbor_graph(parsed.lattice, parsed.frac_coords, GraphConfig())
        assert sample.uid == record["uid"]
        np.testing.assert_array_equal(sample.atomic_numbers, parsed.atomic_numbers)
        np.testing.assert_array_equal(sample.edge_index, graph.edge_index)
        np.testing.assert_array_equal(sample.edge_distance, graph.edge_distance)
        np.testing.assert_array_equal(sample.edge_image, graph.edge_image)
        np.testing.assert_array_equal(sample.lattice, parsed.lattice)
        np.testing.assert_array_equal(sample.frac_coords, parsed.frac_coords)
        assert sample.labels == {"formation_energy_per_atom": record["formation_energy_per_atom"]}
        assert sample.spacegroup_number == record["spacegroup_number"]


def test_indexing_and_iteration_agree(store):
    assert store[-1].uid == store[199].uid
    with pytest.raises(IndexError):
        store[200]
    uids = [sample.uid for sample in store]
    assert uids == store.records["uid"].to_list()
    shard = next(store.iter_shards())
    assert len(shard) == 200 and shard.node_ptr[-1] == len(shard.atomic_numbers)
    assert shard.edge_ptr[-1] == shard.edge_index.shape[1] == shard.edge_distance.shape[0]


def test_multiple_shards_line_up(tmp_path, store):
    out = tmp_path / "sharded"
    build_from_cif_folder(sample_dir(), out, sample_settings(shard_size=64), workers=2, progress=False)
    sharded = crystal_data.open(out)
    assert sharded.manifest["counts"]["shards"] == 4
    assert [s["records"] for s in sharded.manifest["shards"]] == [64, 64, 64, 8]
    for index in (0, 63, 64, 130, 199):
        a, b = sharded[index], store[index]
        assert a.uid == b.uid
        np.testing.assert_array_equal(a.edge_index, b.edge_index)
    assert crystal_data.verify_store(out) == []


def test_verify_passes_then_catches_tampering(sample_store, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(sample_store, copy)
    assert crystal_data.verify_store(copy) == []
    chunk = next((copy / "graphs").rglob("edge_distance/c/0"))
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    (copy / "records" / "stray.parquet").write_bytes(b"x")
    problems = crystal_data.verify_store(copy)
    assert any("edge_distance" in p and "sha256" in p for p in problems)
    assert any("stray.parquet: not listed" in p for p in problems)


def test_verify_catches_count_mismatch(sample_store, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(sample_store, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["counts"]["records"] = 199
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert any("records add up to 200, manifest says 199" in p for p in crystal_data.verify_store(copy))


def test_rebuilding_the_same_plan_is_a_no_op_and_other_inputs_conflict(sample_store, tmp_path):
    report = build_from_cif_folder(sample_dir(), sample_store, sample_settings(), progress=False)
    assert report.shards_done_before == report.shards and report.records == 200
    with pytest.raises(BuildConflict, match="other inputs or settings"):
        build_from_cif_folder(sample_dir(), sample_store, sample_settings(shard_size=10), progress=False)
    (tmp_path / "junk.txt").write_text("not a store")
    with pytest.raises(BuildConflict, match="not a store"):
        build_from_cif_folder(sample_dir(), tmp_path, sample_settings(), progress=False)


def test_open_explains_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a finished store"):
        crystal_data.open(tmp_path)
