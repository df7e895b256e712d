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


def pick_device(name: str | None) -> torch.device:
    """The device `--device` names (default: cuda where there is one, else cpu), checked: a
    name torch does not know, or a GPU this machine lacks, is a clear error, not a crash."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from engine.compiler.ir import located_error
    hint = "use cpu, cuda, cuda:N or mps, or leave --device out (cuda where there is one)"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise located_error(f"unknown device {name!r}", None, "--device", hint) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise located_error(f"--device {name}: this machine has no CUDA GPU (or torch was "
                            "built without CUDA)", None, "--device", "use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise located_error(f"--device {name}: this machine has {torch.cuda.device_count()} "
                            "CUDA GPU(s)", None, "--device", "GPUs count from cuda:0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise located_error(f"--device {name}: MPS is not available here", None, "--device",
                            "use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise located_error(f"--device {name}: the engine trains on cpu, cuda or mps", None,
                            "--device", hint)
    return device


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


# `python -c` and `-m` put the working folder first on sys.path, so a user's engine.py or blocks/
# there would replace the engine in every process; these drop it first (`-P` needs Python 3.11).
_NO_CWD = "import sys; sys.path[:1] = [p for p in sys.path[:1] if p not in ('', '.')]; "
TORCHRUN = _NO_CWD + "from torch.distributed.run import main; main()"
WORKER = _NO_CWD + "from engine.cli import main; sys.exit(main())"


def launch_command(nproc: int, argv: list[str]) -> list[str]:
    """torchrun starting N workers that each run `engine ARGV` with the working folder off sys.path."""
    return [sys.executable, "-c", TORCHRUN, "--standalone", f"--nproc_per_node={nproc}",
            "--no-python", sys.executable, "-c", WORKER, *argv]


def launch(nproc: int, argv: list[str]) -> int:
    """`engine train --nproc N ...`: rerun the same command under torchrun with N processes."""
    return subprocess.call(launch_command(nproc, argv))
