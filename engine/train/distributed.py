"""DistributedDataParallel on CPU (gloo) or GPU (nccl), started by torchrun or `--nproc N`."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class World:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> World:
    """This process's place; initialises the process group when torchrun started several."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return World(dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else World()


def wrap(model: nn.Module, world: World) -> nn.Module:
    return nn.parallel.DistributedDataParallel(model) if world.world > 1 else model


def all_sum(values: list[float], world: World) -> list[float]:
    """Sum numbers over all processes (every process gets the totals)."""
    if world.world == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier(world: World) -> None:
    if world.world > 1:
        dist.barrier()


def launch(nproc: int, argv: list[str]) -> int:
    """`engine train --nproc N ...`: rerun the same command under torchrun with N processes."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "engine.cli", *argv]
    return subprocess.call(cmd)
