"""Checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint holds only tensors, numbers, strings, lists and dicts; it is written to a temporary
file in the same folder and renamed over the old one, so a run killed at any moment leaves the
previous checkpoint intact. Loading uses `torch.load(weights_only=True)`, which refuses anything
but those plain types.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

from engine.compiler.ir import Loc, located_error


def save_checkpoint(state: dict, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def write_text_atomic(path: Path, text: str) -> None:
    """A run's text file (metrics.csv, recipe.yaml, ...) replaced whole or not at all."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through a temporary file in the same folder, flushed to disk, then renamed over
    `path`: a run killed at any moment leaves the old file or the new one, never half of one,
    and no temporary file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise located_error(f"no checkpoint at {path}", path,
                            hint="give a run folder's checkpoints/last.pt or best.pt")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt file or one holding objects we refuse to unpickle
        raise located_error(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}",
                            path, hint="it may be truncated or not from `engine train`") from None


def trained_weights(state: dict) -> dict[str, torch.Tensor]:
    """A checkpoint's procedure state -> the weights the run evaluated: its EMA copy where it kept
    one (AveragedModel's `module.` prefix and step count dropped), else the trained weights."""
    if not state.get("ema"):
        return state["model"]
    return {k.removeprefix("module."): v for k, v in state["ema"].items() if k != "n_averaged"}


def newest_match(pattern: str | None, loc: Loc, where: str, need: str, hint: str) -> Path:
    """The newest file matching a glob a recipe option names (`runs/x-*/checkpoints/last.pt`),
    or a located error saying what `need`s it and how to make one (`hint`)."""
    matches = sorted(glob.glob(str(pattern)), key=lambda p: Path(p).stat().st_mtime) \
        if pattern else []
    if not matches:
        raise located_error(f"{need}; {pattern!r} matches no file", loc, where, hint)
    return Path(matches[-1])
