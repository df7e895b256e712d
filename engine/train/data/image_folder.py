"""The `image_folder` dataset: image files in torchvision's ImageFolder layout (train/<class>/*)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from engine.compiler.ir import located_error
from engine.train.data.dataset_classes import FileImageDataset
from engine.train.data.datasets import (
    VAL_FRACTION,
    DatasetInfo,
    dataset_arg,
    dataset_folder,
    dataset_fraction,
    describe_folder,
    train_val_split,
)
from engine.train.registry import DATASETS

# ---------------------------------------------------------------------------------------------
# image folders (torchvision ImageFolder layout)


@lru_cache(maxsize=16)
def _scan_folder(folder: str, classes: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    index = {c: i for i, c in enumerate(classes)}
    return tuple(make_dataset(folder, index, extensions=IMG_EXTENSIONS, allow_empty=True))


def _class_dirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


class ImageFolder:
    """Images in class folders: root/train/<class>/*.png, root/val/..., root/test/...

    Classes are train's subfolders, sorted (as torchvision's ImageFolder). Without val/, val is a
    seeded, stratified 10% of train. Images are read as RGB, or greyscale with `channels: 1`."""
    ARGS = ("folder", "channels", "val_fraction")  # its data.args keys

    name = "image_folder"

    def folder(self, root: Path, args: dict) -> Path:
        folder = dataset_folder(root, args, None, self.name)
        if not (folder / "train").is_dir():
            raise located_error(
                f"dataset 'image_folder': no train/ in {describe_folder(folder)}",
                folder,
                hint="lay images out as train/<class>/*.png (and val/, test/) and point data.folder "
                "(or data.root, or the environment variable ENGINE_DATA) at that folder",
                path="data",
            )
        return folder

    def channels(self, args: dict) -> int:
        channels = dataset_arg(args, "channels", int, 3, self.name)
        if channels not in (1, 3):
            raise located_error(
                f"dataset 'image_folder': data.channels must be 1 or 3, got {channels}",
                path="data.channels",
                hint="1 reads greyscale, 3 reads RGB",
            )
        return channels

    def classes(self, folder: Path) -> list[str]:
        classes = _class_dirs(folder / "train")
        if not classes:
            raise located_error(
                f"dataset 'image_folder': no class folders in {folder / 'train'}",
                folder / "train",
                hint="put each class's images in its own subfolder: train/<class>/*.png",
                path="data",
            )
        return classes

    def info(self, root: Path, args: dict) -> DatasetInfo:
        folder = self.folder(root, args)
        return DatasetInfo(
            channels=self.channels(args), size=None, classes=self.classes(folder),
            needs_root=True, default_dir=None,
        )  # fmt: skip

    def samples(self, folder: Path, split: str, classes: list[str]) -> list[tuple[str, int]]:
        where = folder / split
        extra = sorted(set(_class_dirs(where)) - set(classes))
        if extra:
            raise located_error(
                f"dataset 'image_folder': {split}/ has classes not in train/: {', '.join(extra)}",
                where,
                hint="every class folder of val/ and test/ must also exist in train/",
                path="data",
            )
        samples = list(_scan_folder(str(where), tuple(classes)))
        if not samples:
            raise located_error(f"dataset 'image_folder': no images in {where}", where, path="data",
                                hint="supported: .png .jpg .jpeg .bmp .ppm .pgm .tif .tiff .webp")
        return samples

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        folder = self.folder(root, args)
        classes = self.classes(folder)
        channels = self.channels(args)
        if (folder / split).is_dir():
            samples = self.samples(folder, split, classes)
        elif split == "val":
            train = self.samples(folder, "train", classes)
            val = dataset_fraction(args, "val_fraction", VAL_FRACTION, self.name)
            cut = train_val_split(np.array([label for _, label in train]), seed, val)
            samples = [train[i] for i in cut["val"]]
        else:
            raise located_error(
                f"dataset 'image_folder': no {split}/ in {folder}",
                folder,
                hint=f"add {split}/<class>/* images there",
                path="data",
            )
        if split == "train" and not (folder / "val").is_dir():
            val = dataset_fraction(args, "val_fraction", VAL_FRACTION, self.name)
            cut = train_val_split(np.array([label for _, label in samples]), seed, val)
            samples = [samples[i] for i in cut["train"]]
        return FileImageDataset(samples, channels, transform, classes)


DATASETS.add("image_folder", ImageFolder())
