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


def pick_device(name: str | None, option: str = "--device") -> torch.device:
    """The device `--device` (or a recipe's `device:`, then option="device") names (default:
    cuda where there is one, else cpu), checked: a name torch does not know, or a GPU this
    machine lacks, is a clear error, not a crash."""
    if not name or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from engine.compiler.ir import located_error
    hint = "use cpu, cuda, cuda:N or mps, or leave --device out (cuda where there is one)"
    flag = option if option.startswith("--") else f"{option}:"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise located_error(f"unknown device {name!r}", None, option, hint) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise located_error(f"{flag} {name}: this machine has no CUDA GPU (or torch was "
                            "built without CUDA)", None, option, "use cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise located_error(f"{flag} {name}: this machine has {torch.cuda.device_count()} "
                            "CUDA GPU(s)", None, option, "GPUs count from cuda:0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise located_error(f"{flag} {name}: MPS is not available here", None, option,
                            "use cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise located_error(f"{flag} {name}: the engine trains on cpu, cuda or mps", None,
                            option, hint)
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


@dataclass
class Nodes:
    """Where this machine's processes fit in a run over several machines (`engine train
    --nnodes N --node-rank K --master ADDR:PORT`, or `--rdzv-endpoint HOST:PORT --rdzv-id ID`)."""
    nnodes: str = "1"  # N, or MIN:MAX for an elastic rendezvous
    node_rank: int | None = None
    master: str | None = None
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None

    @property
    def several(self) -> bool:
        """Whether torchrun must start this node even with one process on it."""
        return self.nnodes != "1" or self.node_rank is not None or any(
            (self.master, self.rdzv_endpoint, self.rdzv_id))


def _error(message: str, hint: str = ""):
    """A clear error about the launch options (not a spec: no place)."""
    from engine.compiler.ir import located_error
    return located_error(message, None, "", hint)


def host_port(text: str, option: str) -> tuple[str, int]:
    """ADDR:PORT (an IPv6 address in brackets: [::1]:29500) split and checked."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _error(f"{option} {text!r} is not ADDR:PORT",
                     "a host name or address and a port from 1 to 65535, e.g. 10.0.0.1:29500")
    return host, int(port)


def torchrun_options(nproc: int, nodes: Nodes) -> list[str]:
    """torchrun's options for `--nproc` processes on this node of `nodes`, checked: options that
    contradict each other are a clear error here, not a rendezvous that waits forever."""
    if nproc < 1:
        raise _error(f"--nproc {nproc}: a node runs at least one process")
    low, _, high = nodes.nnodes.partition(":")
    if not low.isdigit() or (high and not high.isdigit()) or int(low) < 1 \
            or (high and int(high) < int(low)):
        raise _error(f"--nnodes {nodes.nnodes!r} is not a count of machines",
                     "N (1 or more), or MIN:MAX with --rdzv-endpoint")
    count = int(high or low)
    options = [f"--nproc_per_node={nproc}"]
    if nodes.master and nodes.rdzv_endpoint:
        raise _error("--master and --rdzv-endpoint are two ways to meet: give one",
                     "--master ADDR:PORT with --node-rank, or --rdzv-endpoint with --rdzv-id")
    if nodes.rdzv_id and not nodes.rdzv_endpoint:
        raise _error("--rdzv-id needs --rdzv-endpoint HOST:PORT")
    if nodes.rdzv_endpoint:
        host_port(nodes.rdzv_endpoint, "--rdzv-endpoint")
        if not nodes.rdzv_id:
            raise _error("--rdzv-endpoint needs --rdzv-id ID",
                         "a job id that every node passes alike (e.g. $SLURM_JOB_ID)")
        if nodes.node_rank is not None:
            raise _error("--node-rank goes with --master: with --rdzv-endpoint the rendezvous "
                         "numbers the nodes", "leave --node-rank out")
        return [*options, f"--nnodes={nodes.nnodes}", "--rdzv_backend=c10d",
                f"--rdzv_endpoint={nodes.rdzv_endpoint}", f"--rdzv_id={nodes.rdzv_id}"]
    if high:
        raise _error(f"--nnodes {nodes.nnodes}: a range of machines needs --rdzv-endpoint",
                     "give a number of machines with --master")
    rank = nodes.node_rank
    if rank is not None and not 0 <= rank < count:
        raise _error(f"--node-rank {rank} with --nnodes {count}: nodes count from 0 to "
                     f"{count - 1}")
    if count > 1 and not nodes.master:
        raise _error(f"--nnodes {count} needs --master ADDR:PORT (node 0's address and a free "
                     "port), or --rdzv-endpoint HOST:PORT --rdzv-id ID")
    if count > 1 and rank is None:
        raise _error(f"--nnodes {count} needs --node-rank: each machine its own number, from 0 "
                     f"(the --master machine) to {count - 1}")
    if not nodes.master:
        return [*options, "--standalone"]
    addr, port = host_port(nodes.master, "--master")
    return [*options, f"--nnodes={count}", f"--node_rank={rank or 0}", f"--master_addr={addr}",
            f"--master_port={port}"]


def launch_command(nproc: int, argv: list[str], nodes: Nodes | None = None) -> list[str]:
    """torchrun starting N workers that each run `engine ARGV` with the working folder off sys.path."""
    return [sys.executable, "-c", TORCHRUN, *torchrun_options(nproc, nodes or Nodes()),
            "--no-python", sys.executable, "-c", WORKER, *argv]


def launch(nproc: int, argv: list[str], nodes: Nodes | None = None) -> int:
    """`engine train --nproc N [--nnodes ...] ...`: rerun the same command under torchrun with N
    processes on this node (and this node's place among `nodes`)."""
    return subprocess.call(launch_command(nproc, argv, nodes))
