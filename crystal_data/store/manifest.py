"""The manifest: what a store holds, how it was made, and the sha256 of every file."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

import pyarrow.parquet as pq

from crystal_data.schema import SCHEMA_VERSION
from crystal_data.store import layout
from crystal_data.store.atomic import atomic_write, atomic_write_json, remove

STORE_FORMAT = "crystal_data.store"
LIBRARIES = ("crysgnn-toolkit", "numpy", "pymatgen", "gemmi", "spglib", "pyarrow", "zarr", "polars")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def store_files(store: Path) -> list[Path]:
    """Every file of a store that the manifest covers, sorted (the manifest and the work areas of
    unfinished stages, top-level names starting with a dot, are excluded)."""
    files = []
    for path in store.rglob("*"):
        rel = path.relative_to(store)
        if path.is_file() and rel.parts[0] != layout.MANIFEST and not rel.parts[0].startswith("."):
            files.append(path)
    return sorted(files, key=lambda p: p.relative_to(store).as_posix())


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def update_manifest(store: Path, sections: dict, changed: list[str], tmp_root: Path) -> dict:
    """Set top-level ``sections`` of the manifest and refresh the checksums of the ``changed`` files
    (relative paths; a file that no longer exists leaves the listing). Written atomically."""
    manifest = json.loads((store / layout.MANIFEST).read_text())
    manifest.update(sections)
    files = manifest["files"]
    for rel in changed:
        path = store / rel
        if path.is_file():
            files[rel] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
        else:
            files.pop(rel, None)
    manifest["files"] = dict(sorted(files.items()))
    atomic_write_json(store / layout.MANIFEST, manifest, tmp_root)
    return manifest


def _count_sources(sources: dict[str, dict], table) -> None:
    """Add a shard's records per source (and the versions seen) to ``sources``."""
    counts = table.group_by(["source", "source_version"]).aggregate([([], "count_all")])
    for row in counts.to_pylist():
        entry = sources.setdefault(row["source"], {"versions": set(), "records": 0})
        entry["versions"].add(row["source_version"])
        entry["records"] += row["count_all"]


def finalize_store(store: Path, plan: dict, settings, num_shards: int) -> dict:
    """Merge per-shard rejections, write the manifest (last, atomically), drop the build area.
    Returns the counts."""
    import pyarrow as pa
    import zarr

    rejected_parts = [pq.read_table(layout.build_rejected_path(store, k)) for k in range(num_shards)]
    rejected = pa.concat_tables(rejected_parts)
    atomic_write(
        store / layout.REJECTED,
        lambda path: pq.write_table(rejected, path, compression="zstd"),
        layout.tmp_dir(store),
    )
    shards, parsers = [], {}
    sources: dict[str, dict] = {}
    totals = {"records": 0, "nodes": 0, "edges": 0}
    graph_hash = settings.graph.hash
    for k in range(num_shards):
        records_file = pq.ParquetFile(layout.records_path(store, k))
        group = zarr.open_group(layout.graphs_path(store, graph_hash, k), mode="r")
        meta = records_file.schema_arrow.metadata or {}
        _count_sources(sources, records_file.read(columns=["source", "source_version"]))
        for name, count in json.loads(meta.get(b"crystal_data.parsers", b"{}")).items():
            parsers[name] = parsers.get(name, 0) + count
        shard = {
            "name": layout.shard_name(k),
            "records": records_file.metadata.num_rows,
            "rejected": rejected_parts[k].num_rows,
            "nodes": int(group["atomic_numbers"].shape[0]),
            "edges": int(group["edge_distance"].shape[0]),
        }
        shards.append(shard)
        for key in totals:
            totals[key] += shard[key]
    counts = {"inputs": plan["num_inputs"], "rejected": rejected.num_rows, "shards": num_shards, **totals}
    if counts["records"] + counts["rejected"] != counts["inputs"]:
        raise RuntimeError(
            f"{store}: {counts['inputs']} inputs but {counts['records']} records + "
            f"{counts['rejected']} rejected; the build lost inputs"
        )
    reasons: dict[str, int] = {}
    for code in rejected.column("reason_code").to_pylist():
        reasons[code] = reasons.get(code, 0) + 1
    manifest = {
        "format": STORE_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "sources": {
            name: {"version": ", ".join(sorted(entry["versions"])), "records": entry["records"]}
            for name, entry in sorted(sources.items())
        },
        "labels": dict(settings.label_units),
        "symmetry": settings.symmetry.to_dict(),
        "graphs": {graph_hash: settings.graph.to_dict()},
        "default_graphs": graph_hash,
        "counts": counts,
        "rejected_by_reason": dict(sorted(reasons.items())),
        "parsers": dict(sorted(parsers.items())),
        "shards": shards,
        "build": {"plan": plan},
        "libraries": library_versions(),
        "files": {
            path.relative_to(store).as_posix(): {"sha256": file_sha256(path), "bytes": path.stat().st_size}
            for path in store_files(store)
        },
    }
    atomic_write_json(store / layout.MANIFEST, manifest, layout.tmp_dir(store))
    remove(store / layout.BUILD_DIR)
    return counts
