"""Run tracking: TensorBoard event files and the `status` file of a run folder.

`Tracker` writes <run>/tb/ with torch.utils.tensorboard's SummaryWriter (the `tensorboard`
package): step scalars (`train/loss`, `train/lr` every `log_every_steps` steps) and the
metrics.csv row of each epoch (`epoch/<column>`, at the run's global step), so
`tensorboard --logdir runs` shows every run. A resumed run purges the events after its
checkpoint's step, so the curves continue without doubles. Without the package, or on a
process other than the main one, every call does nothing.

`write_status` keeps <run>/status (JSON): `running` with the process id and host while the run
trains, `finished` at its end; `engine runs` reads a `running` whose process is gone as killed.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
from pathlib import Path

from engine.train.checkpoint import write_text_atomic

STATUS = "status"


class Tracker:
    """TensorBoard scalars of one run (a no-op where `folder` is None or tensorboard is missing)."""

    def __init__(self, folder: Path | None = None, every_steps: int = 10, purge_step: int = 0):
        self.every = every_steps
        self.writer = None
        if folder is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: the CSV and plot still record the run
            return
        self.writer = SummaryWriter(str(Path(folder) / "tb"), purge_step=purge_step or None)

    def step(self, step: int, loss: float, lr: float) -> None:
        if self.writer is None or not self.every or step % self.every:
            return
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def epoch(self, row: dict) -> None:
        if self.writer is None:
            return
        step = int(row.get("step", row.get("epoch", 0)))
        for key, value in row.items():
            if key not in ("epoch", "step") and isinstance(value, (int, float)) \
                    and math.isfinite(value):
                self.writer.add_scalar(f"epoch/{key}", value, step)
        self.writer.add_scalar("epoch/epoch", row.get("epoch", 0), step)
        self.writer.flush()

    def image(self, tag: str, image, step: int) -> None:
        """An image tensor (C, H, W, values in [0, 1]), such as a grid of samples."""
        if self.writer is not None:
            self.writer.add_image(tag, image, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def write_status(folder: Path, state: str, reason: str = "", cpu_start: float | None = None) -> None:
    """<folder>/status: `running` (with pid, host, start time), `finished`, or `failed` /
    `interrupted` with the reason (the error's first line); the first start time is kept across
    resumes. `cpu_start`: the process CPU time when this process began the run (default 0)."""
    path = Path(folder) / STATUS
    old = read_status(folder)
    now = time.time()
    # CPU seconds of every process the run has had (a resume is a new process): unlike wall
    # time, a figure that holds when other work shares the machine
    same = old.get("pid") == os.getpid() and old.get("host") == socket.gethostname()
    before = float(old.get("cpu_s_before", 0.0) if same else old.get("cpu_s", 0.0))
    status = {"state": state, "pid": os.getpid(), "host": socket.gethostname(),
              "started": old.get("started", now), "updated": now,
              "cpu_s": round(before + time.process_time() - (cpu_start or 0.0), 1),
              "cpu_s_before": before,
              "threads": _threads()}
    if reason:
        status["reason"] = reason[:200]
    write_text_atomic(path, json.dumps(status) + "\n")


def _threads() -> int | None:
    """torch's intra-op threads, where torch is loaded (a status read without it says None)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def read_status(folder: Path) -> dict:
    try:
        value = json.loads((Path(folder) / STATUS).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
