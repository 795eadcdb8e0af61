"""Check a store against its manifest: every checksum, every count, every shard's alignment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from crystal_data.store import layout
from crystal_data.store.manifest import file_sha256, store_files


def verify_store(path: str | Path, checksums: bool = True) -> list[str]:
    """Every problem found, as a message naming the file; an empty list means the store (or release)
    is intact. ``checksums=False`` skips the sha256 of each file (sizes, counts and alignment are still
    checked): for a caller that hashes the bytes itself as it reads them."""
    store = Path(path)
    manifest_file = store / layout.MANIFEST
    if not manifest_file.exists():
        return [f"{manifest_file}: missing (not a finished store)"]
    try:
        manifest = json.loads(manifest_file.read_text())
    except json.JSONDecodeError as exc:
        return [f"{manifest_file}: not valid JSON ({exc})"]
    problems = _check_files(store, manifest["files"], checksums)
    problems += [f"{work}: work area of an unfinished stage" for work in sorted(store.glob(".*"))]
    if problems:
        return problems  # counts below would only repeat what the checksums already say
    return _check_counts(store, manifest) + _check_release(store, manifest)


def _check_files(store: Path, expected: dict[str, dict], checksums: bool) -> list[str]:
    problems = []
    present = {p.relative_to(store).as_posix(): p for p in store_files(store)}
    for rel in sorted(set(expected) - set(present)):
        problems.append(f"{store / rel}: listed in the manifest but missing")
    for rel in sorted(set(present) - set(expected)):
        problems.append(f"{store / rel}: not listed in the manifest")
    for rel in sorted(set(expected) & set(present)):
        entry, file = expected[rel], present[rel]
        if file.stat().st_size != entry["bytes"]:
            problems.append(f"{file}: {file.stat().st_size} bytes, manifest says {entry['bytes']}")
        elif checksums and file_sha256(file) != entry["sha256"]:
            problems.append(f"{file}: sha256 differs from the manifest")
    return problems


def _check_counts(store: Path, manifest: dict) -> list[str]:
    import zarr

    problems = []
    counts = manifest["counts"]
    totals = {"records": 0, "rejected": 0, "nodes": 0, "edges": 0}
    for shard in manifest["shards"]:
        name = shard["name"]
        records = pq.read_table(store / layout.RECORDS_DIR / f"{name}.parquet", columns=["uid", "nsites"])
        totals["records"] += records.num_rows
        totals["rejected"] += shard["rejected"]
        if records.num_rows != shard["records"]:
            problems.append(f"{name}: {records.num_rows} records, manifest says {shard['records']}")
        for graph_hash in manifest["graphs"]:
            where = store / layout.GRAPHS_DIR / graph_hash / f"{name}.zarr"
            group = zarr.open_group(where, mode="r")
            node_ptr, edge_ptr = group["node_ptr"][...], group["edge_ptr"][...]
            edge_index = group["edge_index"][...]
            nsites = np.asarray(records.column("nsites"), dtype=np.int64)
            if group.attrs["uids"] != records.column("uid").to_pylist():
                problems.append(f"{where}: graph uids are not the records' uids in order")
            elif not np.array_equal(np.diff(node_ptr), nsites):
                problems.append(f"{where}: atoms per graph differ from the records' nsites")
            elif node_ptr[-1] != group["atomic_numbers"].shape[0] or edge_ptr[-1] != edge_index.shape[1]:
                problems.append(f"{where}: offsets do not match the array lengths")
            elif edge_index.size and (
                edge_index.min() < 0 or (edge_index >= np.repeat(nsites, np.diff(edge_ptr))).any()
            ):
                problems.append(f"{where}: an edge points outside its graph")
            elif "line_ptr" in group:
                problems += _check_line_graph(where, group, edge_ptr)
            if graph_hash == manifest["default_graphs"]:
                totals["nodes"] += int(node_ptr[-1])
                totals["edges"] += int(edge_ptr[-1])
    rejected_rows = pq.ParquetFile(store / layout.REJECTED).metadata.num_rows
    if rejected_rows != counts["rejected"]:
        problems.append(
            f"{store / layout.REJECTED}: {rejected_rows} rows, manifest says {counts['rejected']}"
        )
    for key, total in totals.items():
        if total != counts[key]:
            problems.append(f"{store}: {key} add up to {total}, manifest says {counts[key]}")
    problems += _check_duplicate_map(store, manifest)
    if counts["records"] + counts["rejected"] != counts["inputs"]:
        problems.append(
            f"{store}: {counts['inputs']} inputs, {counts['records']} records + {counts['rejected']} rejected"
        )
    return problems


def _check_line_graph(where: Path, group, edge_ptr: np.ndarray) -> list[str]:
    """A line-graph featurizer's extra arrays (ALIGNN): offsets, lengths, pairs within their graph."""
    line_ptr, line_index = group["line_ptr"][...], group["line_index"][...]
    if group["edge_vector"].shape != (edge_ptr[-1], 3):
        return [f"{where}: edge_vector does not match the edges"]
    pairs = line_index.shape[1]
    if len(line_ptr) != len(edge_ptr) or line_ptr[-1] != pairs or group["line_cos"].shape != (pairs,):
        return [f"{where}: line-graph offsets do not match the array lengths"]
    edges = np.repeat(np.diff(edge_ptr), np.diff(line_ptr))
    if line_index.size and (line_index.min() < 0 or (line_index >= edges).any()):
        return [f"{where}: a line-graph pair points outside its graph's edges"]
    return []


def _check_duplicate_map(store: Path, manifest: dict) -> list[str]:
    """The duplicate map and the leakage table name only records of this store, without chains."""
    problems = []
    tables = [(name, section) for name, section in ((layout.DUPLICATES, "dedup"), (layout.LEAKAGE, "leakage"))
              if name in manifest["files"]]  # fmt: skip
    if not tables:
        return problems
    uids = set()
    for shard in manifest["shards"]:
        uids.update(pq.read_table(store / layout.RECORDS_DIR / f"{shard['name']}.parquet", columns=["uid"])
                    .column("uid").to_pylist())  # fmt: skip
    for name, section in tables:
        table = pq.read_table(store / name)
        expected = manifest[section]["counts"]["duplicates" if section == "dedup" else "leaked"]
        if table.num_rows != expected:
            problems.append(f"{store / name}: {table.num_rows} rows, manifest says {expected}")
        columns = ("canonical_uid", "member_uid") if section == "dedup" else ("uid",)
        for column in columns:
            unknown = set(table.column(column).to_pylist()) - uids
            if unknown:
                problems.append(
                    f"{store / name}: {column} {sorted(unknown)[0]!r} is not a record of this store"
                )
        if section == "dedup":
            members = table.column("member_uid").to_pylist()
            canonicals = set(table.column("canonical_uid").to_pylist())
            if len(set(members)) != len(members):
                problems.append(f"{store / name}: a record is a member of two groups")
            if canonicals & set(members):
                problems.append(f"{store / name}: a canonical record is itself a member (a chain)")
    return problems


def _check_release(store: Path, manifest: dict) -> list[str]:
    """A release's own files (card, changelog, changes) are listed, hence checksummed, and its summary
    counts are the store's."""
    release = manifest.get("release")
    if release is None:
        return []
    problems = [
        f"{store / rel}: a release file not listed in the manifest"
        for rel in release.get("files", [])
        if rel not in manifest["files"]
    ]
    said, counts = release.get("counts", {}), manifest["counts"]
    for key in ("records", "rejected"):
        if said.get(key) != counts[key]:
            problems.append(
                f"{store}: the release section says {key} {said.get(key)}, the store {counts[key]}"
            )
    return problems
