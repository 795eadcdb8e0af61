"""The frozen CrysGNN teacher and its node embeddings, computed once per (teacher, store) and cached.

The reference ran the teacher in train mode inside every student step, so its BatchNorm used batch
statistics and drifted (method.md §11 B3). Here the teacher is put in eval mode with every parameter
frozen, run under ``torch.no_grad()``, and its embeddings of every crystal of a store are written once
to ``data_home()/teacher-embeddings/<key>/`` (one Zarr array per store shard, node rows in store order,
the layout :class:`~crysgnn_models.loader.GraphStream` reads through ``teacher=``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from crysgnn_models.loader import GraphBatch, GraphStream
from crysgnn_models.loader.teacher import write_node_array_shards
from crysgnn_models.models.crysgnn import CrysGNN, CrysGNNConfig
from crysgnn_models.models.reference import load_reference_state_dict
from crysgnn_models.training.checkpoint import FORMAT, load_checkpoint, store_fingerprint
from crystal_data.home import data_home
from crystal_data.progress import progress_bar
from crystal_data.store.atomic import atomic_write
from crystal_data.store.manifest import file_sha256
from crystal_data.store.reader import Store

log = logging.getLogger("crysgnn.teacher")

CACHE_DIR = "teacher-embeddings"
COMPLETE = "complete.json"


@dataclass
class Teacher:
    """A frozen CrysGNN: ``embed(batch)`` gives (N, 64) L2-normalised node embeddings.

    ``reference``: the weights are the released reference checkpoint's; the model then runs in
    ``compat`` mode (the reference's padding edges, method.md §1.2), so the embeddings are the ones the
    reference would give."""

    model: CrysGNN
    sha256: str
    path: str
    reference: bool

    @torch.no_grad()
    def embed(self, batch: GraphBatch) -> torch.Tensor:
        nodes, _ = self.model.encode(batch)
        return nodes

    def to(self, device: torch.device) -> Teacher:
        self.model.to(device)
        return self


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """Eval mode (BatchNorm uses its running statistics) and no parameter takes gradients."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def load_teacher(path: str | Path) -> Teacher:
    """A CrysGNN checkpoint written by ``crysgnn pretrain``, or the released reference checkpoint
    (``{'state_dict': ...}``, method.md §12), loaded with ``weights_only=True`` and frozen."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such teacher checkpoint")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        state = load_checkpoint(path, kind="crysgnn")
        model = CrysGNN(CrysGNNConfig.from_dict(state["model_config"]))
        model.load_state_dict(state["model"])
        reference = False
    else:
        model = load_reference_state_dict(CrysGNN(CrysGNNConfig(compat=True)), raw)
        reference = True
    return Teacher(freeze(model), file_sha256(Path(path)), str(path), reference)


def cache_key(teacher: Teacher, store: str | Path, graphs: str) -> str:
    parts = {"teacher": teacher.sha256, "store": store_fingerprint(store), "graphs": graphs}
    text = json.dumps({**parts, "reference": teacher.reference}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def teacher_embeddings(
    teacher: Teacher,
    store: str | Path,
    *,
    graphs: str | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    cache_root: str | Path | None = None,
    progress: bool = False,
) -> Path:
    """The folder of the teacher's node embeddings for every crystal of ``store`` (computed on the
    first call, then reused). ``graphs``: the store's featurizer the teacher reads (default: the
    store's default, CGCNN's 12-NN graphs)."""
    opened = Store(store)
    manifest = opened.manifest
    graphs = graphs or manifest["default_graphs"]
    root = Path(cache_root) if cache_root is not None else data_home() / CACHE_DIR
    folder = root / cache_key(teacher, store, graphs)
    if (folder / COMPLETE).exists():
        log.info("teacher embeddings: cache hit %s", folder)
        return folder
    log.info("teacher embeddings: computing for %s into %s", store, folder)
    teacher.to(torch.device(device))
    write = partial(_write_embeddings, teacher, opened, graphs, device, batch_size, progress)
    atomic_write(folder, write, root)  # a killed run leaves no folder that looks complete
    return folder


def _write_embeddings(
    teacher: Teacher, opened: Store, graphs: str, device, batch_size: int, progress: bool, work: Path
) -> None:
    work.mkdir(parents=True)
    manifest = opened.manifest
    shards = manifest["shards"]
    stream = GraphStream(opened, batch_size=batch_size, shuffle=False, graphs=graphs)
    pending: list[np.ndarray] = []
    filled, shard = 0, 0
    with progress_bar(progress, len(stream), "teacher embeddings") as advance:
        # unshuffled batches come in ascending store row, so node rows arrive in store order
        for batch in stream:
            pending.append(teacher.embed(batch.to(device)).float().cpu().numpy())
            filled += len(pending[-1])
            while shard < len(shards) and filled >= shards[shard]["nodes"]:
                block = np.concatenate(pending)
                need = shards[shard]["nodes"]
                write_node_array_shards(work, opened, {shard: block[:need]})
                pending, filled = [block[need:]], filled - need
                shard += 1
            advance(1)
    empty = np.zeros((0, teacher.model.config.node_dim), np.float32)
    while shard < len(shards):  # trailing shards without crystals
        write_node_array_shards(work, opened, {shard: empty})
        shard += 1
    complete = {"teacher": teacher.path, "store": str(opened.path), "graphs": graphs}
    (work / COMPLETE).write_text(json.dumps(complete))
