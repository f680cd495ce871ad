"""torch.distributed set-up for ``torchrun``: rank/world from the environment, DDP wrapping.

Single-process runs need nothing: every helper degrades to rank 0 of 1. Under ``torchrun`` the
backend is NCCL on CUDA and gloo on CPU (the CPU path is what the tests exercise).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device_type: str) -> DistInfo:
    """Join the process group if launched by torchrun (``WORLD_SIZE`` > 1), else single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world=world, local_rank=local_rank)


def barrier(info: DistInfo) -> None:
    """Wait for all ranks (no-op when single-process)."""
    if info.enabled:
        dist.barrier()


def all_reduce_mean(
    values: dict[str, float], info: DistInfo, device: torch.device
) -> dict[str, float]:
    """Average scalar logs over ranks (identical keys on every rank)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= info.world
    return dict(zip(keys, t.tolist()))


def broadcast_object(obj, info: DistInfo):
    """Send a picklable object from rank 0 to every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup(info: DistInfo) -> None:
    """Leave the process group."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside a DistributedDataParallel wrapper."""
    return model.module if hasattr(model, "module") else model
