"""Datasets a recipe names under `data:`, each registered in `engine.train.registry.DATASETS`.

Every image dataset gives `(image, label)` items: the image a float tensor [C, H, W] in [0, 1] (after
the recipe's transform, if any), the label an int. Splits are "train", "val" and "test"; where a
dataset has no official split, it is cut from the data by a seeded, stratified rule, so the same
seed always gives the same split and the splits never overlap.

- `digits`: scikit-learn's bundled 8x8 digits, no files. Test 20%, val 10%, train the rest.
- `mnist`: `mnist/` with the four official IDX files (train = official train minus 10% val,
  test = official test), or only the two `t10k-*` files (the 10,000 test images cut into
  7,000 train / 1,000 val / 2,000 test). `download: true` fetches the official set.
- `usps`: `usps/usps.h5`. Train = given train minus 10% val, test = given test.
- `cifar10`: `cifar10/cifar-10-batches-py` (torchvision's layout; `download: true` fetches it).
  Train = official train minus 10% val, test = official test.
- `image_folder`: `train/<class>/*`, `val/...`, `test/...`; without `val/`, val is 10% of train.

Text datasets (Moses-tokenised; items are long tensors of token ids, padded per batch by the
dataset's `collate`; vocabularies from the training split, cached under $ENGINE_CACHE/text;
`DatasetInfo.spec_params` gives the vocabulary sizes and the pad id, 0):

- `multi30k`: translation on `multi30k/` (train / val / test_2016_flickr), items
  `(src tokens + EOS, SOS + tgt tokens + EOS)`. Args `src` (de), `tgt` (en), `min_freq` (2),
  `lowercase` (false), `max_len` (drops longer train pairs). See `engine.train.data.multi30k`.
- `multi30k_langid`: every caption in each of `languages` ([en, de, fr]), items
  `(tokens + EOS, language index)`. Args `languages`, `min_freq` (2), `lowercase` (true).
- `multi30k_lm`: English captions for a word-level language model, items SOS + tokens + EOS.
  Args `lang` (en), `min_freq` (3), `lowercase` (true).
- `imdb`: `aclImdb/` movie reviews, neg = 0 / pos = 1, items `(tokens + EOS, label)`; val is a
  seeded, stratified 10% of train. Args `max_len` (300), `min_freq` (6), `lowercase` (true),
  `val_fraction`, `download`.

Optional args: `folder`, `val_fraction` (0.1), `test_fraction` (0.2, where test is cut from the
data), `download` (mnist, cifar10), `channels` (image_folder: 1 or 3), `file` (usps).

The data root is `data.root`, else the environment variable `ENGINE_DATA`, else, when the engine
runs from a git checkout with a `shared/data` folder beside it, that folder, else `data` in the
engine's cache folder ($ENGINE_CACHE, else $XDG_CACHE_HOME/engine, else ~/.cache/engine), where
`download: true` puts files (`data_root`). `args.folder` points a dataset at another folder
(relative to the data root, or absolute). Loaded arrays are cached once per process.

This module holds the entry points, argument checks and split rules; each source lives in its
own module (`digits`, `mnist`, `cifar10`, `image_folder`, `multi30k`, `imdb`; text helpers in
`text`), which `engine.train.data` imports so that
its registration runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from engine.compiler.ir import located_error
from engine.train.data.dataset_classes import ArrayDataset, FileImageDataset  # noqa: F401 - re-exported
from engine.train.registry import DATASETS

SPLITS = ("train", "val", "test")
DIGIT_CLASSES = [str(i) for i in range(10)]
CHECKOUT = Path(__file__).resolve().parents[3]  # the repository in a checkout; site-packages if installed
VAL_FRACTION = 0.1
TEST_FRACTION = 0.2


@dataclass
class DatasetInfo:
    channels: int  # image channels after loading
    size: int | None  # native image side (None: varies, e.g. image_folder)
    classes: list[str]  # class names, index = label
    needs_root: bool  # whether files are read from `root`
    default_dir: str | None  # folder name under the shared data root, e.g. "mnist"
    # sizes a spec takes from the data (text: vocabulary sizes and the pad id), e.g. {"vocab": 5893, "pad": 0}
    spec_params: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# ---------------------------------------------------------------------------------------------
# public entry points


def data_root(root: str | os.PathLike | None) -> Path:
    """The folder datasets read from: `root` if given, else $ENGINE_DATA, else the checkout's
    ../shared/data (only when the engine runs from a git checkout that has it), else the cache's
    `data` folder (an installed engine never looks beside site-packages)."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("ENGINE_DATA")
    if env:
        return Path(env).expanduser()
    shared = CHECKOUT.parent / "shared" / "data"
    if (CHECKOUT / ".git").exists() and shared.is_dir():
        return shared
    return cache_root() / "data"


def cache_root() -> Path:
    """The engine's cache folder: $ENGINE_CACHE, else $XDG_CACHE_HOME/engine, else ~/.cache/engine."""
    if os.environ.get("ENGINE_CACHE"):
        return Path(os.environ["ENGINE_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "engine"


def dataset_names() -> list[str]:
    return DATASETS.names()


def dataset_info(name: str, root: Path | None, args: dict | None = None) -> DatasetInfo:
    return _source(name).info(_root(root), dict(args or {}))


def build_dataset(
    name: str,
    root: Path | None,
    split: str,
    seed: int,
    transform: Callable | None = None,
    args: dict | None = None,
) -> Dataset:
    """The `split` ("train", "val" or "test") of dataset `name`, cut deterministically from `seed`."""
    source = _source(name)
    if split not in SPLITS:
        raise located_error(f"unknown split {split!r}", path="data", hint=f"use one of {', '.join(SPLITS)}")
    return source.build(_root(root), split, int(seed or 0), transform, dict(args or {}))


def _source(name: str) -> Any:
    if name not in DATASETS:
        raise located_error(f"unknown dataset {name!r}", hint=DATASETS.hint(name), path="data.name")
    return DATASETS.get(name)


def _root(root: Path | str | None) -> Path:
    return data_root(root)


# ---------------------------------------------------------------------------------------------
# argument checks and message parts, shared by every dataset module (errors sit under `data`)


def dataset_arg(args: dict, key: str, kind: type | tuple[type, ...], default: Any, name: str) -> Any:
    """args[key] checked against `kind` (bool is not taken for a number), or `default`."""
    value = args.get(key)
    if value is None:
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        want = " or ".join(k.__name__ for k in kinds)
        raise located_error(
            f"dataset {name!r}: data.{key} must be {want}, got {value!r}",
            path=f"data.{key}",
            hint=f"write e.g. `{key}: {_example(kinds[0])}`",
        )
    return value


def _example(kind: type) -> str:
    return {bool: "true", int: "1", float: "0.1", str: "my_folder"}.get(kind, "...")


def dataset_fraction(args: dict, key: str, default: float, name: str) -> float:
    """args[key] as a fraction in [0, 1) (e.g. `val_fraction`), or `default`."""
    value = dataset_arg(args, key, (float, int), default, name)
    if not 0 <= value < 1:
        raise located_error(
            f"dataset {name!r}: data.{key} must be in [0, 1), got {value!r}",
            path=f"data.{key}",
            hint=f"e.g. `{key}: {default}`",
        )
    return float(value)


def dataset_folder(root: Path, args: dict, default_dir: str | None, name: str) -> Path:
    """`args.folder` (relative to the data root, or absolute), else root/default_dir (or root)."""
    folder = dataset_arg(args, "folder", (str, os.PathLike), None, name)
    if folder is not None:
        return root / Path(folder).expanduser()
    return root / default_dir if default_dir else root


def arg_given(args: dict, key: str) -> bool:
    """Whether the recipe set args[key] (a null counts as not set)."""
    return args.get(key) is not None


def root_hint(default_dir: str) -> str:
    """The tail of a missing-files hint: how to point the data root at the folder."""
    return f"or set data.root (or the environment variable ENGINE_DATA) to the folder holding {default_dir}/"


def describe_folder(folder: Path) -> str:
    """The folder for a message, flagged when it does not exist (the usual cause of missing files)."""
    return f"{folder}" if folder.is_dir() else f"{folder} (no such folder)"


def min_freq_arg(args: dict, default: int, name: str) -> int:
    """A text dataset's `min_freq`: how often a word must occur in training to get its own id."""
    value = dataset_arg(args, "min_freq", int, default, name)
    if value < 1:
        raise located_error(f"dataset {name!r}: data.min_freq must be at least 1, got {value}",
                            path="data.min_freq", hint="e.g. `min_freq: 2`")
    return value


def refuse_transform(transform, name: str) -> None:
    """Text datasets take no image transforms: a recipe that gives them one is told so."""
    if transform is not None:
        raise located_error(f"dataset {name!r} is text: image transforms do not apply",
                            path="data.transforms", hint="remove data.transforms")


# ---------------------------------------------------------------------------------------------
# splitting


def stratified_holdout(labels: np.ndarray, n_hold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split positions 0..len(labels)-1 into (rest, held out), `n_hold` exactly held out.

    Each class gives its share of `n_hold` (largest remainders, ties broken by the seeded RNG),
    drawn at random within the class; both parts come back sorted."""
    labels = np.asarray(labels)
    n = len(labels)
    n_hold = int(min(max(n_hold, 0), n))
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts * n_hold / max(n, 1)
    take = np.floor(quota).astype(int)
    short = n_hold - int(take.sum())
    if short:
        order = np.lexsort((rng.random(len(classes)), -(quota - take)))
        take[order[:short]] += 1
    held = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        held.append(rng.permutation(members)[: take[c]])
    hold = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    mask = np.ones(n, dtype=bool)
    mask[hold] = False
    return np.flatnonzero(mask), hold


def three_way_split(labels: np.ndarray, seed: int, val_fraction: float, test_fraction: float) -> dict:
    """Stratified train / val / test positions: test = round(test_fraction * n), val =
    round(val_fraction * n), train the rest."""
    if val_fraction + test_fraction >= 1:
        raise located_error(
            f"val_fraction + test_fraction must be below 1, got {val_fraction} + {test_fraction}",
            hint="leave some data for training",
            path="data",
        )
    n = len(labels)
    rest, test = stratified_holdout(labels, round(test_fraction * n), seed)
    keep, val = stratified_holdout(np.asarray(labels)[rest], round(val_fraction * n), seed + 1)
    return {"train": rest[keep], "val": rest[val], "test": test}


def train_val_split(labels: np.ndarray, seed: int, val_fraction: float) -> dict:
    """Stratified train / val positions of an official training set: val = round(val_fraction * n)."""
    train, val = stratified_holdout(labels, round(val_fraction * len(labels)), seed)
    return {"train": train, "val": val}
