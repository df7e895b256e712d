"""Digit sets held in memory: `digits` (scikit-learn's bundled 8x8) and `usps` (16x16, HDF5)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from engine.compiler.ir import located_error
from engine.train.data.dataset_classes import ArrayDataset
from engine.train.data.datasets import (
    DIGIT_CLASSES,
    TEST_FRACTION,
    VAL_FRACTION,
    DatasetInfo,
    arg_given,
    dataset_arg,
    dataset_folder,
    dataset_fraction,
    describe_folder,
    root_hint,
    three_way_split,
    train_val_split,
)
from engine.train.registry import DATASETS

# ---------------------------------------------------------------------------------------------
# digits (scikit-learn, no files)


@lru_cache(maxsize=1)
def _load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy((d.images / 16.0).astype(np.float32)).unsqueeze(1)
    return images, torch.from_numpy(d.target.astype(np.int64))


class Digits:
    """scikit-learn's bundled 8x8 digits (1,797 images); test 20%, val 10%, train the rest."""
    ARGS = ("val_fraction", "test_fraction")  # its data.args keys

    def info(self, root: Path, args: dict) -> DatasetInfo:
        return DatasetInfo(channels=1, size=8, classes=DIGIT_CLASSES, needs_root=False, default_dir=None)

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        images, labels = _load_digits()
        val = dataset_fraction(args, "val_fraction", VAL_FRACTION, "digits")
        test = dataset_fraction(args, "test_fraction", TEST_FRACTION, "digits")
        parts = three_way_split(labels.numpy(), seed, val, test)
        return ArrayDataset(images, labels, parts[split], transform, DIGIT_CLASSES)


# ---------------------------------------------------------------------------------------------
# USPS (HDF5)


@lru_cache(maxsize=4)
def _load_usps(path: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    import h5py

    out = {}
    try:
        with h5py.File(path, "r") as f:
            for part in ("train", "test"):
                data = np.asarray(f[f"{part}/data"], dtype=np.float32)
                target = np.asarray(f[f"{part}/target"]).astype(np.int64)
                images = torch.from_numpy(data.reshape(-1, 1, 16, 16)).clamp_(0, 1)
                out[part] = (images, torch.from_numpy(target))
    except (OSError, KeyError, ValueError) as e:
        raise located_error(
            f"dataset 'usps': cannot read {path}: {e}",
            path,
            hint="expected HDF5 with train/data (N, 256), train/target, test/data, test/target",
            path="data",
        ) from None
    return out


class Usps:
    """USPS digits from usps.h5: 7,291 train (minus a seeded 10% val) and 2,007 test, 16x16."""
    ARGS = ("folder", "file", "val_fraction")  # its data.args keys

    name = "usps"

    def info(self, root: Path, args: dict) -> DatasetInfo:
        return DatasetInfo(channels=1, size=16, classes=DIGIT_CLASSES, needs_root=True, default_dir="usps")

    def path(self, root: Path, args: dict) -> Path:
        folder = dataset_folder(root, args, "usps", self.name)
        file = dataset_arg(args, "file", str, "usps.h5", self.name)
        if not (folder / file).is_file() and not arg_given(args, "folder") and (root / file).is_file():
            folder = root
        if not (folder / file).is_file():
            raise located_error(
                f"dataset 'usps': no {file} in {describe_folder(folder)}",
                folder,
                hint=f"put usps.h5 (HDF5 with train/ and test/ groups) there, {root_hint('usps')}",
                path="data",
            )
        return folder / file

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        parts = _load_usps(str(self.path(root, args)))
        if split == "test":
            images, labels = parts["test"]
            return ArrayDataset(images, labels, None, transform, DIGIT_CLASSES)
        images, labels = parts["train"]
        val = dataset_fraction(args, "val_fraction", VAL_FRACTION, self.name)
        cut = train_val_split(labels.numpy(), seed, val)
        return ArrayDataset(images, labels, cut[split], transform, DIGIT_CLASSES)


DATASETS.add("digits", Digits())
DATASETS.add("usps", Usps())
