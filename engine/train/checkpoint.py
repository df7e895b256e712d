"""Checkpoints: written atomically, read without unpickling arbitrary objects, verified.

A checkpoint holds only tensors, numbers, strings, lists and dicts; it is written to a temporary
file in the same folder and renamed over the old one, so a run killed at any moment leaves the
previous checkpoint intact. Loading uses `torch.load(weights_only=True)`, which refuses anything
but those plain types.

Each checkpoint carries a SHA-256 of its content (`sha256`: every tensor's bytes, dtype and
shape, and every other value), computed when it is saved and checked when it is loaded, so a
flipped byte inside a weight tensor, which the zip container does not notice, is an error naming
the file rather than a run that silently trains from garbage. The hash lives inside the file it
covers: a second file beside it could not be replaced in the same atomic step. `fits` compares
what the checkpoint records (`meta`: recipe, procedure, the resolved spec's hash) with the run
that is about to load it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

from engine.compiler.ir import Loc, located_error


def save_checkpoint(state: dict, path: Path) -> None:
    state = {**state, "sha256": content_hash(state)}
    atomic_write(path, lambda f: torch.save(state, f))


def content_hash(value) -> str:
    """SHA-256 of a checkpoint's content: the same for the state saved and the state loaded."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()


def _feed(digest, value) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    elif isinstance(value, dict):
        digest.update(b"{")
        for key, item in value.items():
            if key != "sha256":
                digest.update(repr(key).encode())
                _feed(digest, item)
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(repr(value).encode())


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
    """A checkpoint's state, verified: a missing, empty, truncated or altered file, or one that
    is not from `engine train`, is a located error naming it."""
    path = Path(path)
    hint = "it may be truncated or not from `engine train`; a run's checkpoints are in its " \
           "checkpoints/ folder (last.pt, best.pt)"
    if not path.is_file():
        raise located_error(f"no checkpoint at {path}", path,
                            hint="give a run folder's checkpoints/last.pt or best.pt")
    if path.stat().st_size == 0:
        raise located_error(f"checkpoint {path} is empty (0 bytes)", path, hint=hint)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt file or one holding objects we refuse to unpickle
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise located_error(f"cannot read checkpoint {path}: {reason}", path, hint=hint) from None
    if not isinstance(state, dict) or not isinstance(state.get("procedure"), dict):
        raise located_error(f"checkpoint {path} holds no training state", path, hint=hint)
    recorded = state.get("sha256")
    if recorded is not None and recorded != content_hash(state):
        raise located_error(
            f"checkpoint {path} is damaged: its content does not match the SHA-256 written into "
            "it when it was saved", path,
            hint="the file changed after the run saved it (a disk or copy error); use another "
                 "checkpoint (best.pt, or a copy) or train again")
    return state


def fits(state: dict, path: Path, recipe: str, expected: dict[str, str]) -> None:
    """A located error when the checkpoint's `meta` (recipe, procedure, spec hash) differs from
    what the run loading it has; checkpoints saved before `meta` existed are not compared."""
    meta = state.get("meta") or {}
    wrong = [_difference(k, meta[k], v) for k, v in expected.items() if k in meta and meta[k] != v]
    if wrong:
        raise located_error(
            f"checkpoint {path} does not fit recipe {recipe} as loaded: " + "; ".join(wrong),
            path, hint="give the recipe and the --set overrides the run was trained with "
                       "(its folder's recipe.yaml holds them), or train a new run")


def _difference(key: str, saved: str, here: str) -> str:
    if key == "spec_sha256":  # the run folder's spec.sha256 holds the saved one
        return f"its network resolved differently (spec sha256 {saved[:12]}, here {here[:12]})"
    return f"it was saved by {key} {saved!r}, not {here!r}"


def sweep_temporaries(folder: Path) -> list[Path]:
    """Remove what a killed `atomic_write` left (`.NAME.XXXX.tmp`): only a kill -9 between
    creating and renaming one leaves it, and resuming is when it is known to be stale."""
    left = sorted(folder.rglob(".*.tmp")) if folder.is_dir() else []
    for tmp in left:
        tmp.unlink(missing_ok=True)
    return left


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
