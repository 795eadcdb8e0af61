"""``crysgnn embed``: CrysGNN's per-atom and per-crystal embeddings of a store or of CIF files, as Parquet,
so any model can be given CrysGNN's knowledge (as extra node features or a distillation target)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from crysgnn_models.distill.teacher import Teacher
from crysgnn_models.loader import GraphStream
from crystal_data.progress import progress_bar
from crystal_data.store import layout
from crystal_data.store.atomic import atomic_write


def embed_store(
    teacher: Teacher, store: str | Path, out: str | Path, *, device="cpu", batch_size=256, progress=False
) -> pa.Table:
    """Embed every crystal of ``store``; write and return one row per crystal: ``uid``,
    ``atomic_numbers`` (site order), ``atom_embeddings`` (one 64-vector per site, L2-normalised) and
    ``crystal_embedding`` (their mean, CrysGNN's graph embedding)."""
    import crystal_data

    opened = crystal_data.open(store)
    uids = opened.records_table(columns=["uid"]).column("uid")
    stream = GraphStream(store, batch_size=batch_size, shuffle=False)
    rows, numbers, atoms, crystals, sizes = [], [], [], [], []
    teacher.to(torch.device(device))
    with progress_bar(progress, len(stream), "embed") as advance, torch.no_grad():
        for batch in stream:
            batch = batch.to(device)
            nodes, graph = teacher.model.encode(batch)  # graph: the mean of the normalised node embeddings
            rows.append(batch.index.cpu().numpy())
            numbers.append(batch.z.cpu().numpy().astype(np.uint8))
            atoms.append(nodes.float().cpu().numpy())
            crystals.append(graph.float().cpu().numpy())
            sizes.append(torch.diff(batch.ptr).cpu().numpy())
            advance(1)
    dim = teacher.model.config.node_dim
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    offsets = (
        pa.array(np.concatenate([[0], np.cumsum(np.concatenate(sizes))]).astype(np.int32)) if sizes else None
    )
    atom_values = np.concatenate(atoms) if atoms else np.zeros((0, dim), np.float32)
    vector = pa.list_(pa.float32(), dim)
    table = pa.table(
        {
            "uid": uids.take(pa.array(row)),
            "atomic_numbers": pa.ListArray.from_arrays(offsets, pa.array(np.concatenate(numbers)))
            if offsets is not None
            else pa.array([], pa.list_(pa.uint8())),
            "atom_embeddings": pa.ListArray.from_arrays(
                offsets, pa.FixedSizeListArray.from_arrays(pa.array(atom_values.ravel()), dim)
            )
            if offsets is not None
            else pa.array([], pa.list_(vector)),
            "crystal_embedding": pa.FixedSizeListArray.from_arrays(
                pa.array(np.concatenate(crystals).ravel() if crystals else np.zeros(0, np.float32)), dim
            ),
        }
    )
    metadata = {
        b"crysgnn.teacher_sha256": teacher.sha256.encode(),
        b"crysgnn.reference": str(teacher.reference).encode(),
    }
    table = table.replace_schema_metadata(metadata)
    out = Path(out)
    atomic_write(out, lambda tmp: pq.write_table(table, tmp, compression="zstd"), out.parent)
    return table


def embed_files(
    teacher: Teacher,
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    workers: int = 1,
    device="cpu",
    progress=False,
) -> tuple[pa.Table, list[str]]:
    """Embed CIF files (or folders of them): they are built into a temporary store first (the same
    graphs as every store). Returns the table and the inputs that could not be read, with reasons."""
    from crystal_data.build import BuildSettings, build_store
    from crystal_data.readers.cif_folder import CifInput

    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths.extend(sorted(item.glob("*.cif")))
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    if not paths:
        raise ValueError(f"no CIF files in {', '.join(map(str, inputs))}")
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        # ids must be unique in a store; fall back to full paths when file names repeat
        stems = [str(p) for p in paths]
    with tempfile.TemporaryDirectory(prefix="crysgnn-embed-") as tmp:
        store = Path(tmp) / "store"
        cif_inputs = [CifInput(str(p.resolve()), stem) for p, stem in zip(paths, stems)]
        build_store(cif_inputs, store, BuildSettings(source="files"), workers=workers, progress=progress)
        import polars as pl

        rejected = pl.read_parquet(store / layout.REJECTED)
        problems = [f"{r['input']}: {r['reason']}" for r in rejected.iter_rows(named=True)]
        table = embed_store(teacher, store, out, device=device, progress=progress)
    return table, problems
