"""The `cifar10` dataset: CIFAR-10 in torchvision's layout (`download: true` fetches it)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch.utils.data import Dataset

from engine.compiler.ir import SpecError, located_error
from engine.train.data.dataset_classes import ArrayDataset
from engine.train.data.datasets import (
    VAL_FRACTION,
    DatasetInfo,
    arg_given,
    dataset_arg,
    dataset_folder,
    dataset_fraction,
    describe_folder,
    root_hint,
    train_val_split,
)
from engine.train.registry import DATASETS

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# CIFAR-10 (torchvision)


@lru_cache(maxsize=4)
def _load_cifar10(folder: str, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import CIFAR10

    ds = CIFAR10(folder, train=train, download=download)
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(ds.targets, dtype=torch.long)


class Cifar10:
    """CIFAR-10 in torchvision's layout (root/cifar10/cifar-10-batches-py); val = seeded 10% of train."""
    ARGS = ("folder", "download", "val_fraction")  # its data.args keys

    name = "cifar10"
    subdir = "cifar-10-batches-py"

    def info(self, root: Path, args: dict) -> DatasetInfo:
        return DatasetInfo(
            channels=3, size=32, classes=CIFAR10_CLASSES, needs_root=True, default_dir="cifar10"
        )

    def folder(self, root: Path, args: dict) -> tuple[Path, bool]:
        folder = dataset_folder(root, args, "cifar10", self.name)
        download = bool(dataset_arg(args, "download", bool, False, self.name))
        if not (folder / self.subdir).is_dir() and not arg_given(args, "folder"):
            if (root / self.subdir).is_dir():
                folder = root
        if not (folder / self.subdir).is_dir() and not download:
            raise located_error(
                f"dataset 'cifar10': no {self.subdir}/ in {describe_folder(folder)}",
                folder,
                hint=f"set data.args.download: true (needs internet) to fetch it there, "
                     f"{root_hint('cifar10')}",
                path="data",
            )
        return folder, download

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        folder, download = self.folder(root, args)
        try:
            if download:
                folder.mkdir(parents=True, exist_ok=True)
            images, labels = _load_cifar10(str(folder), split != "test", download)
        except SpecError:
            raise
        except Exception as e:  # noqa: BLE001 - a failed download or a corrupt file
            raise located_error(
                f"dataset 'cifar10': cannot load from {folder}: {e}",
                folder,
                hint="check the internet connection (data.args.download: true) or the files there",
                path="data",
            ) from None
        if split == "test":
            return ArrayDataset(images, labels, None, transform, CIFAR10_CLASSES)
        val = dataset_fraction(args, "val_fraction", VAL_FRACTION, self.name)
        cut = train_val_split(labels.numpy(), seed, val)
        return ArrayDataset(images, labels, cut[split], transform, CIFAR10_CLASSES)


DATASETS.add("cifar10", Cifar10())
