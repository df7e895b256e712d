"""Judges: trained networks that score what another model made, got in one way each.

- `digit_judge(dataset, ...)`: the digit classifier of a digit dataset (digit-FD, label accuracy,
  code agreement, CycleGAN's class kept). Trained the first time from a bundled classification
  recipe (`FEATURE_RECIPES`) and cached under $ENGINE_CACHE/digit_fd (default
  $XDG_CACHE_HOME/engine or ~/.cache/engine).
- `checkpoint_judge(path, ...)`: a network from a run's checkpoint, built from the recipe saved
  in that run's folder (Pix2Pix's FCN-score judge: a segmentation net trained on real images).

Training a judge is a whole run, so the runner hands its `train` function in: this module sits
beside the runner and below it, and procedures reach judges through their `run`, never by
importing this module (that import was the one cycle: judge -> runner -> procedures -> judge).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from engine.compiler.build import build
from engine.compiler.dump import resolved_dict
from engine.compiler.ir import located_error
from engine.train.checkpoint import load_checkpoint, trained_weights
from engine.train.data.datasets import cache_root
from engine.train.data.transforms import build_transform
from engine.train.evaluation.digit_fd import DigitJudge
from engine.train.recipe import Recipe, load_recipe

# dataset -> the bundled recipe whose classifier judges its samples (same image size)
FEATURE_RECIPES = {"digits": "digits_cnn", "mnist": "mnist_cnn", "usps": "usps_cnn"}

Train = Callable[[Recipe, Path], None]  # trains a recipe into a run folder (the runner's)


def digit_judge(dataset: str, root: str | None, device: str, train: Train) -> DigitJudge:
    """The cached classifier of `dataset`, trained with `train` the first time."""
    if dataset not in FEATURE_RECIPES:
        raise located_error(
            f"digit-FD has no judge for dataset '{dataset}'", "eval.sample_metrics",
            hint=f"it judges {', '.join(FEATURE_RECIPES)}; drop digit_fd for this recipe")
    recipe = load_recipe(FEATURE_RECIPES[dataset], [f"data.root={root}"] if root else [])
    model = build(recipe.shaped, device=device)
    weights = cached_weights(recipe, train)
    model.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
    eval_items = (recipe["data"].get("transforms") or {}).get("eval") or []
    return DigitJudge(model.eval(), build_transform(list(eval_items), "data.transforms.eval"),
                      device, judge_identity(recipe.name, weights))


def judge_identity(recipe_name: str, weights: Path) -> str:
    """`recipe@sha256:<16 hex>` of the judge's weights file: two figures share a judge when
    their identities are equal (the cache key alone would not show a retrained file)."""
    return f"{recipe_name}@sha256:{hashlib.sha256(weights.read_bytes()).hexdigest()[:16]}"


def checkpoint_judge(path: Path, fallback_recipe: str, device: str) -> nn.Module:
    """The network of a run's checkpoint, in eval mode, built from the recipe saved beside it
    (`fallback_recipe` where the folder has none)."""
    saved = path.parent.parent / "recipe.yaml"
    recipe = load_recipe(saved if saved.exists() else fallback_recipe)
    model = build(recipe.shaped, device=device)
    model.load_state_dict(trained_weights(load_checkpoint(path)["procedure"]))
    return model.eval()


def cache_dir() -> Path:
    return cache_root() / "digit_fd"


def cached_weights(recipe: Recipe, train: Train) -> Path:
    """The judge's weights: trained from `recipe` the first time, then read from the cache
    (keyed by the recipe and the resolved spec, so a changed recipe trains a new judge)."""
    key = json.dumps({"recipe": json.loads(json.dumps(recipe.doc)),
                      "spec": resolved_dict(recipe.shaped)}, sort_keys=True, default=str)
    path = cache_dir() / f"{recipe.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(path.with_suffix(".lock")):
            if not path.exists():  # another process may have trained it while this one waited
                _train_once(recipe, path, train)
    return path


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock` (two `engine eval`s, or two test workers, sharing one
    cache train a judge once: the second waits, then reads the first's file). Without fcntl
    (Windows) there is no lock: each process trains, and the atomic rename keeps the file whole."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _train_once(recipe: Recipe, path: Path, train: Train) -> None:
    print(f"digit-FD: training its judge once, recipe '{recipe.name}' (cached as {path})",
          file=sys.stderr, flush=True)
    folder = path.parent / f"{path.stem}-run"
    shutil.rmtree(folder, ignore_errors=True)
    train(recipe, folder)
    weights = trained_weights(load_checkpoint(folder / "checkpoints" / "last.pt")["procedure"])
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(weights, tmp)
    tmp.replace(path)  # atomic: a killed run never leaves a half-written judge
    shutil.rmtree(folder, ignore_errors=True)
