"""Device choice and ``torchrun`` (DDP) setup: one process per device, gloo on CPU, NCCL on GPUs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Runtime:
    """Where this process runs: ``rank`` of ``world_size`` processes (1 without ``torchrun``)."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: the first GPU when there is one, else the CPU; otherwise ``device`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def setup_runtime(device: str = "auto") -> Runtime:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE`` > 1), else run alone.

    Under ``torchrun`` on GPUs each process takes the GPU of its ``LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Runtime(pick_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return Runtime(chosen, rank, world_size, local_rank)


def teardown_runtime(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_mean(value: float, runtime: Runtime) -> float:
    """The mean of a Python number over ranks (the number itself without DDP)."""
    if not runtime.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=runtime.device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / runtime.world_size


def check_replicas_agree(model: torch.nn.Module, runtime: Runtime) -> None:
    """Raise if the ranks' parameters differ (DDP keeps them equal; a difference is a bug)."""
    if not runtime.distributed:
        return
    with torch.no_grad():
        fingerprint = torch.stack(
            [p.detach().double().sum() + p.detach().double().abs().sum() for p in model.parameters()]
        ).sum()
    gathered = [torch.zeros_like(fingerprint) for _ in range(runtime.world_size)]
    dist.all_gather(gathered, fingerprint)
    values = [float(g) for g in gathered]
    if max(values) - min(values) > 1e-9 * max(1.0, abs(values[0])):
        raise RuntimeError(f"DDP replicas diverged: parameter fingerprints per rank {values}")
