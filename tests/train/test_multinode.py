"""Training over several machines: two one-process "nodes" on 127.0.0.1 (gloo) meet through
`engine train --nnodes 2 --node-rank K --master ADDR:PORT` and follow the one-process loss curve."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch.distributed as dist

from engine.cli import main
from tests.conftest import REPO
from tests.train.test_train import rows, write

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="this torch build has no torch.distributed gloo backend, which the nodes meet through")

# CPU and gloo on every platform (a GPU here would pick nccl, and both "nodes" would share it)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def engine(*argv: str, cwd: Path = REPO) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", *argv], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_all(procs: list[subprocess.Popen], timeout: float = 400) -> list[str]:
    """Wait for every process; the first that fails (or the deadline) stops the others, so a
    node left waiting for its peer at the rendezvous never hangs the test."""
    deadline = time.time() + timeout
    while any(p.poll() is None for p in procs):
        if time.time() > deadline or any(p.returncode not in (None, 0) for p in procs):
            for p in procs:
                if p.poll() is None:
                    p.kill()
            break
        time.sleep(0.2)
    outputs = [p.communicate()[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]
    return outputs


def test_two_nodes_follow_the_one_process_loss_curve(tmp_path):
    recipe = write(tmp_path, "mlp.yaml", epochs=2)
    one, two, elsewhere = tmp_path / "one", tmp_path / "two", tmp_path / "node1-output"
    master = f"127.0.0.1:{free_port()}"
    nodes = ("--nnodes", "2", "--master", master, "--device", "cpu")
    # all three at once: the nodes spend most of their time starting up and meeting
    procs = [engine("train", str(recipe), "--output", str(one), "--device", "cpu"),
             engine("train", str(recipe), "--output", str(two), "--node-rank", "0", *nodes),
             # node 1 names another --output: every rank takes rank 0's folder, and only rank 0 writes
             engine("train", str(recipe), "--output", str(elsewhere), "--node-rank", "1", *nodes)]
    outputs = wait_all(procs)
    folder = next(two.iterdir())
    assert [p.name for p in two.iterdir()] == [folder.name] and not elsewhere.exists()
    assert f"run folder: {folder}" in outputs[1]
    a, b = rows(next(one.iterdir())), rows(folder)
    for ra, rb in zip(a, b, strict=True):
        assert abs(float(ra["train_loss"]) - float(rb["train_loss"])) < 1e-4
        assert abs(float(ra["val_loss"]) - float(rb["val_loss"])) < 1e-4


RUN_FOLDER = """
import sys
from engine.train.recipe import load_recipe
from engine.train.runner import new_run_folder
print("folder:", new_run_folder(load_recipe(sys.argv[1], []), sys.argv[2]))
"""


def test_every_node_takes_rank_0s_run_folder(tmp_path):
    """Two processes that each see themselves as local rank 0 of their own machine (another
    working folder, another --output) get the folder rank 0 chose."""
    recipe = write(tmp_path, "mlp.yaml")
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        cwd = tmp_path / f"node{rank}"
        cwd.mkdir()
        env = {**ENV, "PYTHONPATH": str(REPO), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
               "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", textwrap.dedent(RUN_FOLDER),
                                       str(recipe), str(tmp_path / f"runs{rank}")], cwd=cwd,
                                      env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outputs = wait_all(procs, timeout=200)
    chosen = [next(line for line in out.splitlines() if line.startswith("folder: "))
              for out in outputs]
    assert chosen[0] == chosen[1] and chosen[0].startswith(f"folder: {tmp_path / 'runs0'}")


@pytest.mark.parametrize("options, message", [
    (["--nnodes", "2", "--node-rank", "2", "--master", "127.0.0.1:29500"], "nodes count from 0 to 1"),
    (["--nnodes", "2", "--node-rank", "1"], "--nnodes 2 needs --master ADDR:PORT"),
    (["--nnodes", "2", "--master", "127.0.0.1:29500"], "--nnodes 2 needs --node-rank"),
    (["--nnodes", "2", "--node-rank", "0", "--master", "127.0.0.1"], "is not ADDR:PORT"),
    (["--nnodes", "2", "--node-rank", "0", "--master", "host:99999"], "is not ADDR:PORT"),
    (["--rdzv-endpoint", "host:29400"], "--rdzv-endpoint needs --rdzv-id"),
    (["--rdzv-id", "job"], "--rdzv-id needs --rdzv-endpoint"),
    (["--master", "a:1", "--rdzv-endpoint", "b:2", "--rdzv-id", "j"], "give one"),
    (["--nnodes", "2:4", "--node-rank", "0", "--master", "a:1"], "needs --rdzv-endpoint"),
])
def test_inconsistent_node_options_are_clear_errors(tmp_path, capsys, monkeypatch, options, message):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert main(["train", str(write(tmp_path)), *options]) == 1
    assert message in capsys.readouterr().err


def test_node_options_map_to_torchrun():
    from engine.train.distributed import Nodes, torchrun_options
    assert torchrun_options(2, Nodes("2", 1, "10.0.0.1:29500")) == [
        "--nproc_per_node=2", "--nnodes=2", "--node_rank=1", "--master_addr=10.0.0.1",
        "--master_port=29500"]
    assert torchrun_options(4, Nodes("1:3", None, None, "head:29400", "job7")) == [
        "--nproc_per_node=4", "--nnodes=1:3", "--rdzv_backend=c10d", "--rdzv_endpoint=head:29400",
        "--rdzv_id=job7"]
    assert torchrun_options(2, Nodes()) == ["--nproc_per_node=2", "--standalone"]
