"""``publish_release``: a finished store written as an immutable, carded, checksummed release.

::

    DEST/<version>/
      manifest.json        the store's manifest + a ``release`` section; sha256 of every file below
      records/ graphs/ rejected.parquet [duplicates.parquet leakage.parquet splits/]   the store's files
      README.md            dataset card (Hugging Face YAML front matter)
      CHANGELOG.md         what changed since the previous release
      changes.parquet      every added, removed and changed uid

The store is verified first (as ``crystal-data verify`` does: checksums, counts, alignment), and every
file is hashed again while it is copied, so a file that changes after the check is never published
either. The release is written under a hidden staging name in DEST and
published in one step at the end (:mod:`crystal_data.release.destination`); an existing
``DEST/<version>`` is never replaced.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crystal_data.progress import progress_bar
from crystal_data.release.card import render_card
from crystal_data.release.changelog import Previous, change_counts, render_changelog, setting_changes
from crystal_data.release.content import columns_for_hashing, diff_hashes, empty_hashes, record_hashes
from crystal_data.release.destination import (
    Folder,
    LocalFolder,
    ReleaseError,
    is_http_url,
    open_folder,
)
from crystal_data.release.paths import check_relative, check_version
from crystal_data.sources.landing import utc_now
from crystal_data.store import layout
from crystal_data.store.reader import Store
from crystal_data.store.verify import verify_store

RELEASE_FORMAT = "crystal_data.release/1"
CARD = "README.md"
CHANGELOG = "CHANGELOG.md"
CHANGES = "changes.parquet"
RELEASE_FILES = (CARD, CHANGELOG, CHANGES)
"""Files a release adds to its store's files."""


@dataclass(frozen=True)
class ReleaseReport:
    """What :func:`publish_release` wrote."""

    version: str
    location: str
    """``DEST/<version>`` as a path or URL."""
    previous: str | None
    """The release (or store) the changelog compares with; ``None`` for a first release."""
    records: int
    added: int
    removed: int
    changed: int
    files: int
    bytes: int
    manifest_sha256: str
    """Pin this to check a copy of the release later."""
    seconds: float


def publish_release(
    store: str | Path | Store,
    version: str,
    dest: str | Path,
    *,
    previous: str | Path | None = None,
    progress: bool = True,
) -> ReleaseReport:
    """Write the finished ``store`` as release ``version`` at ``DEST/<version>/``.

    ``dest``: a folder, a ``file://`` URL or any fsspec URL. ``previous``: the release to compare
    with (path or URL, also ``http(s)://``); by default the most recently created release in ``dest``.
    Raises :class:`~crystal_data.release.ReleaseExists` when ``DEST/<version>`` exists and
    :class:`~crystal_data.release.ReleaseError` when the store does not verify."""
    start = time.perf_counter()
    check_version(version)
    source = Path(store.path if isinstance(store, Store) else store)
    folder = open_folder(dest)
    folder.refuse_existing(version)  # fail before any work; checked again when publishing
    manifest_bytes = _verified_store_manifest(source)
    manifest = json.loads(manifest_bytes)
    earlier = _previous(folder, version, previous)
    staging = f".{version}.{uuid.uuid4().hex}.partial"
    try:
        copied = _copy_store(source, manifest, folder, staging, progress, version)
        old = _hashes_of(*earlier) if earlier else empty_hashes()
        changes = diff_hashes(old, copied.hashes)
        counts = change_counts(changes, copied.hashes.num_rows)
        section = _release_section(version, source, manifest_bytes, manifest, copied, counts, earlier)
        released = {k: v for k, v in manifest.items() if k != "release"} | {"release": section}
        files = dict(copied.files)
        files[CHANGES] = _write(folder, staging, CHANGES, _parquet_bytes(changes))
        settings = setting_changes(earlier[0].manifest, released) if earlier else []
        text = render_changelog(version, earlier[0] if earlier else None, changes, counts, settings)
        files[CHANGELOG] = _write(folder, staging, CHANGELOG, text.encode())
        released["files"] = files  # the card reads which store files exist
        files[CARD] = _write(folder, staging, CARD, render_card(released, copied.schema).encode())
        released["files"] = dict(sorted(files.items()))
        final_manifest = (json.dumps(released, indent=2, sort_keys=True) + "\n").encode()
        _write(folder, staging, layout.MANIFEST, final_manifest)
        folder.publish(staging, version, sorted(files))
    except BaseException:
        folder.remove(staging)
        raise
    return ReleaseReport(
        version=version,
        location=folder.location(version),
        previous=earlier[0].describe() if earlier else None,
        records=copied.hashes.num_rows,
        added=counts["added"],
        removed=counts["removed"],
        changed=counts["changed"],
        files=len(files) + 1,
        bytes=sum(entry["bytes"] for entry in files.values()) + len(final_manifest),
        manifest_sha256=hashlib.sha256(final_manifest).hexdigest(),
        seconds=time.perf_counter() - start,
    )


def _verified_store_manifest(source: Path) -> bytes:
    """The store's manifest bytes, after ``crystal-data verify``'s checks: checksums, counts, alignment."""
    problems = verify_store(source)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise ReleaseError(f"{source} does not verify, nothing was released: {shown}")
    return (source / layout.MANIFEST).read_bytes()


@dataclass
class _Copied:
    """What the copy learnt from the bytes it copied (each table parsed from verified bytes)."""

    files: dict[str, dict]
    hashes: pa.Table
    schema: pa.Schema
    label_records: dict[str, int]
    rejected: pa.Table
    duplicates: pa.Table | None


def _copy_store(
    source: Path, manifest: dict, folder: Folder, staging: str, progress: bool, version: str
) -> _Copied:
    """Copy every store file listed in the manifest (not an earlier release's own files) into
    ``staging``, hashing as it goes. Records shards are hashed per uid as soon as they are copied, so
    memory holds one shard's bytes at a time."""
    earlier_release_files = set(manifest.get("release", {}).get("files", ()))
    listed = {rel: e for rel, e in manifest["files"].items() if rel not in earlier_release_files}
    shards = [f"{layout.RECORDS_DIR}/{shard['name']}.parquet" for shard in manifest["shards"]]
    shard_files = set(shards)
    labels = list(manifest["labels"])
    hashes: dict[str, pa.Table] = {}
    tables: dict[str, pa.Table] = {}
    label_records = dict.fromkeys(labels, 0)
    schema = None
    files = {}
    with progress_bar(progress, len(listed), f"release {version}") as advance:
        for rel in sorted(listed):
            check_relative(rel)
            keep = rel in shard_files or rel in (layout.REJECTED, layout.DUPLICATES)
            sha256, size, data = _copy_file(source / rel, folder, f"{staging}/{rel}", keep)
            if sha256 != listed[rel]["sha256"] or size != listed[rel]["bytes"]:
                raise ReleaseError(
                    f"{source / rel}: its sha256 or size differs from the store's manifest (modified after "
                    f"the store was written); nothing was released. Run `crystal-data verify {source}`"
                )
            files[rel] = {"sha256": sha256, "bytes": size}
            if rel in shard_files:
                table = pq.read_table(io.BytesIO(data), columns=columns_for_hashing(labels))
                hashes[rel] = record_hashes(table, labels)
                for name in labels:
                    label_records[name] += table.num_rows - table.column(name).null_count
                schema = schema or pq.read_schema(io.BytesIO(data)).remove_metadata()
            elif keep:
                tables[rel] = pq.read_table(io.BytesIO(data), columns=["source"])
            advance(1)
    return _Copied(
        files=files,
        hashes=pa.concat_tables([hashes[rel] for rel in shards]),
        schema=schema,
        label_records=label_records,
        rejected=tables[layout.REJECTED],
        duplicates=tables.get(layout.DUPLICATES),
    )


def _copy_file(path: Path, folder: Folder, rel: str, keep: bool) -> tuple[str, int, bytes | None]:
    digest, size, blocks = hashlib.sha256(), 0, []
    with open(path, "rb") as handle, folder.open_write(rel) as out:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
            size += len(block)
            if keep:
                blocks.append(block)
    return digest.hexdigest(), size, b"".join(blocks) if keep else None


def _write(folder: Folder, staging: str, rel: str, data: bytes) -> dict:
    with folder.open_write(f"{staging}/{rel}") as out:
        out.write(data)
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


# -------------------------------------------------------------------------------------- previous
def _previous(folder: Folder, version: str, previous: str | Path | None) -> tuple[Previous, Folder] | None:
    """The release to compare with: ``previous`` when given, else the most recently created release
    in ``folder`` (by its manifest's ``created_at``), else ``None``."""
    if previous is not None:
        where = _folder_of(previous)
        if not where.exists(layout.MANIFEST):
            raise ReleaseError(f"previous release {where.location()}: no {layout.MANIFEST}")
        return _load_previous(where), where
    candidates = []
    for name in folder.subfolders():
        child = folder.child(name)
        if name.startswith(".") or name == version or not child.exists(layout.MANIFEST):
            continue
        found = _load_previous(child)
        if found.version is not None:
            candidates.append((found.manifest["release"].get("created_at", ""), name, found, child))
    if not candidates:
        return None
    _, _, found, child = max(candidates, key=lambda c: (c[0], c[1]))
    return found, child


def _folder_of(location: str | Path) -> Folder:
    if is_http_url(location):
        from crystal_data.release.remote import fetch_release

        return LocalFolder(fetch_release(str(location)))
    return open_folder(location)


def _load_previous(where: Folder) -> Previous:
    data = where.read_bytes(layout.MANIFEST)
    manifest = json.loads(data)
    release = manifest.get("release") or {}
    return Previous(where.location(), release.get("version"), manifest, hashlib.sha256(data).hexdigest())


def _hashes_of(previous: Previous, where: Folder) -> pa.Table:
    """Content hashes of the previous release's records, one shard at a time, each shard's bytes
    checked against its manifest first."""
    labels = list(previous.manifest["labels"])
    hashes = []
    for shard in previous.manifest["shards"]:
        rel = f"{layout.RECORDS_DIR}/{shard['name']}.parquet"
        data = where.read_bytes(rel)
        if hashlib.sha256(data).hexdigest() != previous.manifest["files"][rel]["sha256"]:
            raise ReleaseError(
                f"{where.location(rel)}: sha256 differs from its manifest; the previous release is corrupt"
            )
        hashes.append(
            record_hashes(pq.read_table(io.BytesIO(data), columns=columns_for_hashing(labels)), labels)
        )
    return pa.concat_tables(hashes) if hashes else empty_hashes()


# ------------------------------------------------------------------------------- release section
def _release_section(
    version: str,
    source: Path,
    manifest_bytes: bytes,
    manifest: dict,
    copied: _Copied,
    changes: dict[str, int],
    earlier: tuple[Previous, Folder] | None,
) -> dict:
    """Everything the card says, as data: versions, counts by source and split, settings, dedup."""
    import crystal_data

    counts = {k: manifest["counts"][k] for k in ("inputs", "records", "rejected", "shards", "nodes", "edges")}
    dedup = manifest.get("dedup")
    if dedup is not None:
        counts["canonical"] = dedup["counts"]["canonical"]
        counts["duplicates"] = dedup["counts"]["duplicates"]
    if "leakage" in manifest:
        counts["leaked"] = manifest["leakage"]["counts"]["leaked"]
    sources = {}
    for name, entry in manifest["sources"].items():
        sources[name] = {
            "version": entry["version"],
            "records": entry["records"],
            "rejected": _count(copied.rejected, name),
            "duplicates": _count(copied.duplicates, name) if copied.duplicates is not None else 0,
        }
    splits = {}
    for key, info in manifest.get("splits", {}).items():
        splits[key] = {
            "target": info["target"],
            "scheme": info["scheme"]["name"],
            "file": info["file"],
            "sizes": info["sizes"],
        }
    default = manifest["default_graphs"]
    return {
        "format": RELEASE_FORMAT,
        "version": version,
        "created_at": utc_now(),
        "toolkit": crystal_data.__version__,
        "store": {
            "path": str(source.resolve()),
            "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        },
        "previous": earlier[0].to_dict() if earlier else None,
        "sources": sources,
        "counts": counts,
        "labels": {
            name: {"unit": unit, "records": copied.label_records[name]}
            for name, unit in manifest["labels"].items()
        },
        "splits": splits,
        "graphs": {
            "default": default,
            "config": manifest["graphs"][default],
            "available": sorted(manifest["graphs"]),
        },
        "symmetry": manifest["symmetry"],
        "dedup": {"config": dedup["config"], "counts": dedup["counts"]} if dedup else None,
        "changes": changes,
        "files": list(RELEASE_FILES),
    }


def _count(table: pa.Table, source: str) -> int:
    return pc.sum(pc.equal(table.column("source"), source)).as_py() or 0
