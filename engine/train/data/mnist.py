"""The `mnist` dataset: MNIST from IDX files (full official set, or only its test set)."""

from __future__ import annotations

import gzip
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
# MNIST (IDX files)

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}  # fmt: skip


def read_idx(path: str | Path, magic: int | None = None) -> np.ndarray:
    """An IDX file (plain or .gz) as an array; checks the magic number (exactly, if given) and the size."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise located_error(f"cannot read IDX file {path.name}: {e}", path, path="data") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise located_error(
            f"{path.name} is not an IDX file (magic {data[:4].hex() or 'missing'})",
            path,
            hint="expected the MNIST files from yann.lecun.com (magic 00000803 images, 00000801 labels)",
            path="data",
        )
    rank = data[3]
    if magic is not None and int.from_bytes(data[:4], "big") != magic:
        raise located_error(
            f"{path.name}: IDX magic 0x{data[:4].hex()}, expected 0x{magic:08x}",
            path,
            hint="MNIST images have magic 00000803 (uint8, 3 dims), labels 00000801 (uint8, 1 dim)",
            path="data",
        )
    header = 4 + 4 * rank
    dims = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(rank))
    dtype = np.dtype(IDX_DTYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise located_error(f"{path.name}: {len(data) - header} data bytes, header {dims} needs {expected}",
                            path, path="data")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


@lru_cache(maxsize=8)
def _load_idx_pair(images_path: str, labels_path: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(images_path, magic=0x00000803)
    labels = read_idx(labels_path, magic=0x00000801)
    if len(images) != len(labels):
        raise located_error(f"{len(images)} images but {len(labels)} labels", labels_path, path="data")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _find_mnist(folder: Path) -> dict[str, Path]:
    """The MNIST files found in `folder`, or torchvision's `folder/MNIST/raw`, plain or gzipped."""
    found = {}
    for key, stem in MNIST_FILES.items():
        for where in (folder, folder / "MNIST" / "raw", folder / "raw"):
            hit = next((where / n for n in (stem + ".gz", stem) if (where / n).is_file()), None)
            if hit:
                found[key] = hit
                break
    return found


class Mnist:
    """MNIST from IDX files: the full official set, or only its test set (cut 7,000/1,000/2,000)."""
    ARGS = ("folder", "download", "val_fraction", "test_fraction")  # its data.args keys

    name = "mnist"

    def info(self, root: Path, args: dict) -> DatasetInfo:
        return DatasetInfo(channels=1, size=28, classes=DIGIT_CLASSES, needs_root=True, default_dir="mnist")

    def files(self, root: Path, args: dict) -> tuple[Path, dict[str, Path]]:
        folder = dataset_folder(root, args, "mnist", self.name)
        found = _find_mnist(folder)
        if not found and not arg_given(args, "folder") and _find_mnist(root):
            folder, found = root, _find_mnist(root)
        full = len(found) == 4
        if not full and dataset_arg(args, "download", bool, False, self.name):
            self.download(folder)
            found = _find_mnist(folder)
            full = len(found) == 4
        if full or {"test_images", "test_labels"} <= found.keys():
            return folder, found
        names = ", ".join(s + ".gz" for s in MNIST_FILES.values())
        have = f" (found only {', '.join(p.name for p in found.values())})" if found else ""
        raise located_error(
            f"dataset 'mnist': no MNIST files in {describe_folder(folder)}{have}",
            folder,
            hint=f"put the IDX files ({names}; or only the two t10k-* ones) there, {root_hint('mnist')}, "
            "or set data.args.download: true (needs internet)",
            path="data",
        )

    def download(self, folder: Path) -> None:
        from torchvision.datasets import MNIST

        try:
            folder.mkdir(parents=True, exist_ok=True)
            for train in (True, False):
                MNIST(str(folder), train=train, download=True)
        except Exception as e:  # noqa: BLE001 - any download failure becomes a readable error
            raise located_error(
                f"dataset 'mnist': download into {folder} failed: {e}",
                folder,
                hint="check the internet connection, or put the IDX files there by hand",
                path="data",
            ) from None

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        folder, found = self.files(root, args)
        test_images, test_labels = _load_idx_pair(str(found["test_images"]), str(found["test_labels"]))
        val = dataset_fraction(args, "val_fraction", VAL_FRACTION, self.name)
        if len(found) < 4:  # only the official test set: cut train / val / test from it
            test = dataset_fraction(args, "test_fraction", TEST_FRACTION, self.name)
            parts = three_way_split(test_labels.numpy(), seed, val, test)
            return ArrayDataset(test_images, test_labels, parts[split], transform, DIGIT_CLASSES)
        if split == "test":
            return ArrayDataset(test_images, test_labels, None, transform, DIGIT_CLASSES)
        images, labels = _load_idx_pair(str(found["train_images"]), str(found["train_labels"]))
        parts = train_val_split(labels.numpy(), seed, val)
        return ArrayDataset(images, labels, parts[split], transform, DIGIT_CLASSES)


DATASETS.add("mnist", Mnist())
