"""Datasets a recipe names under `data:`, each registered in `engine.registry.DATASETS`.

Every dataset gives `(image, label)` items: the image a float tensor [C, H, W] in [0, 1] (after
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

Optional args: `folder`, `val_fraction` (0.1), `test_fraction` (0.2, where test is cut from the
data), `download` (mnist, cifar10), `channels` (image_folder: 1 or 3), `file` (usps).

The data root is `data.root`, else the environment variable `ENGINE_DATA`, else `shared/data`
next to the repository (`data_root`). `args.folder` points a dataset at another folder
(relative to the data root, or absolute). Loaded arrays are cached once per process.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from engine.ir import Diagnostic, Loc, SpecError
from engine.registry import DATASETS

SPLITS = ("train", "val", "test")
DIGIT_CLASSES = [str(i) for i in range(10)]
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
REPO = Path(__file__).resolve().parents[2]
VAL_FRACTION = 0.1
TEST_FRACTION = 0.2


@dataclass
class DatasetInfo:
    channels: int  # image channels after loading
    size: int | None  # native image side (None: varies, e.g. image_folder)
    classes: list[str]  # class names, index = label
    needs_root: bool  # whether files are read from `root`
    default_dir: str | None  # folder name under the shared data root, e.g. "mnist"

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# ---------------------------------------------------------------------------------------------
# public entry points


def data_root(root: str | os.PathLike | None) -> Path:
    """The folder datasets read from: `root` if given, else $ENGINE_DATA, else <repo>/../shared/data."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("ENGINE_DATA")
    if env:
        return Path(env).expanduser()
    return REPO.parent / "shared" / "data"


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
        raise _error(f"unknown split {split!r}", hint=f"use one of {', '.join(SPLITS)}")
    return source.build(_root(root), split, int(seed or 0), transform, dict(args or {}))


def _source(name: str) -> Any:
    if name not in DATASETS:
        raise _error(f"unknown dataset {name!r}", hint=DATASETS.hint(name), path="data.name")
    return DATASETS.get(name)


def _root(root: Path | str | None) -> Path:
    return data_root(root)


# ---------------------------------------------------------------------------------------------
# errors and arguments


def _error(message: str, where: Path | str | None = None, hint: str = "", path: str = "data") -> SpecError:
    loc = Loc(str(where)) if where is not None else None
    return SpecError([Diagnostic(message, loc, path=path, hint=hint)])


def _arg(args: dict, key: str, kind: type | tuple[type, ...], default: Any, name: str) -> Any:
    """args[key] checked against `kind` (bool is not taken for a number), or `default`."""
    value = args.get(key)
    if value is None:
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        want = " or ".join(k.__name__ for k in kinds)
        raise _error(
            f"dataset {name!r}: data.{key} must be {want}, got {value!r}",
            path=f"data.{key}",
            hint=f"write e.g. `{key}: {_example(kinds[0])}`",
        )
    return value


def _example(kind: type) -> str:
    return {bool: "true", int: "1", float: "0.1", str: "my_folder"}.get(kind, "...")


def _fraction(args: dict, key: str, default: float, name: str) -> float:
    value = _arg(args, key, (float, int), default, name)
    if not 0 <= value < 1:
        raise _error(
            f"dataset {name!r}: data.{key} must be in [0, 1), got {value!r}",
            path=f"data.{key}",
            hint=f"e.g. `{key}: {default}`",
        )
    return float(value)


def _folder(root: Path, args: dict, default_dir: str | None, name: str) -> Path:
    """`args.folder` (relative to the data root, or absolute), else root/default_dir (or root)."""
    folder = _arg(args, "folder", (str, os.PathLike), None, name)
    if folder is not None:
        return root / Path(folder).expanduser()
    return root / default_dir if default_dir else root


def _given(args: dict, key: str) -> bool:
    return args.get(key) is not None


def _root_hint(default_dir: str) -> str:
    return f"or set data.root (or the environment variable ENGINE_DATA) to the folder holding {default_dir}/"


def _where(folder: Path) -> str:
    return f"{folder}" if folder.is_dir() else f"{folder} (no such folder)"


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
        raise _error(
            f"val_fraction + test_fraction must be below 1, got {val_fraction} + {test_fraction}",
            hint="leave some data for training",
        )
    n = len(labels)
    rest, test = stratified_holdout(labels, round(test_fraction * n), seed)
    keep, val = stratified_holdout(np.asarray(labels)[rest], round(val_fraction * n), seed + 1)
    return {"train": rest[keep], "val": rest[val], "test": test}


def train_val_split(labels: np.ndarray, seed: int, val_fraction: float) -> dict:
    """Stratified train / val positions of an official training set: val = round(val_fraction * n)."""
    train, val = stratified_holdout(labels, round(val_fraction * len(labels)), seed)
    return {"train": train, "val": val}


# ---------------------------------------------------------------------------------------------
# dataset classes


class ArrayDataset(Dataset):
    """Items of in-memory image and label tensors, at the given positions.

    `images` is uint8 (read as /255) or float in [0, 1], shape [N, C, H, W]; it is shared (not
    copied) between the splits of one dataset."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        indices: np.ndarray | None,
        transform: Callable | None,
        classes: list[str],
    ):
        self.images = images
        self.labels = labels
        self.indices = torch.arange(len(labels)) if indices is None else torch.as_tensor(indices)
        self.transform = transform
        self.classes = classes

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def targets(self) -> torch.Tensor:
        """The labels of this split, in item order."""
        return self.labels[self.indices]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = int(self.indices[i])
        image = self.images[j]
        image = image.float().div_(255) if image.dtype == torch.uint8 else image.clone()
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[j])

    def __repr__(self) -> str:
        shape = list(self.images.shape[1:])
        return f"{type(self).__name__}({len(self)} items, image {shape}, {len(self.classes)} classes)"


class FileImageDataset(Dataset):
    """Items of image files, decoded on access (PIL) to float tensors in [0, 1]."""

    def __init__(self, samples: list[tuple[str, int]], channels: int, transform, classes: list[str]):
        self.samples = samples
        self.mode = "L" if channels == 1 else "RGB"
        self.transform = transform
        self.classes = classes

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.samples], dtype=torch.long)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image
        from torchvision.transforms.v2.functional import pil_to_tensor

        path, label = self.samples[i]
        with Image.open(path) as img:
            image = pil_to_tensor(img.convert(self.mode)).float().div_(255)
        if self.transform is not None:
            image = self.transform(image)
        return image, label

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} files, {len(self.classes)} classes)"


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

    def info(self, root: Path, args: dict) -> DatasetInfo:
        return DatasetInfo(channels=1, size=8, classes=DIGIT_CLASSES, needs_root=False, default_dir=None)

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        images, labels = _load_digits()
        val = _fraction(args, "val_fraction", VAL_FRACTION, "digits")
        test = _fraction(args, "test_fraction", TEST_FRACTION, "digits")
        parts = three_way_split(labels.numpy(), seed, val, test)
        return ArrayDataset(images, labels, parts[split], transform, DIGIT_CLASSES)


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
        raise _error(f"cannot read IDX file {path.name}: {e}", path) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise _error(
            f"{path.name} is not an IDX file (magic {data[:4].hex() or 'missing'})",
            path,
            hint="expected the MNIST files from yann.lecun.com (magic 00000803 images, 00000801 labels)",
        )
    rank = data[3]
    if magic is not None and int.from_bytes(data[:4], "big") != magic:
        raise _error(
            f"{path.name}: IDX magic 0x{data[:4].hex()}, expected 0x{magic:08x}",
            path,
            hint="MNIST images have magic 00000803 (uint8, 3 dims), labels 00000801 (uint8, 1 dim)",
        )
    header = 4 + 4 * rank
    dims = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(rank))
    dtype = np.dtype(IDX_DTYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise _error(f"{path.name}: {len(data) - header} data bytes, header {dims} needs {expected}", path)
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


@lru_cache(maxsize=8)
def _load_idx_pair(images_path: str, labels_path: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(images_path, magic=0x00000803)
    labels = read_idx(labels_path, magic=0x00000801)
    if len(images) != len(labels):
        raise _error(f"{len(images)} images but {len(labels)} labels", labels_path)
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

    name = "mnist"

    def info(self, root: Path, args: dict) -> DatasetInfo:
        return DatasetInfo(channels=1, size=28, classes=DIGIT_CLASSES, needs_root=True, default_dir="mnist")

    def files(self, root: Path, args: dict) -> tuple[Path, dict[str, Path]]:
        folder = _folder(root, args, "mnist", self.name)
        found = _find_mnist(folder)
        if not found and not _given(args, "folder") and _find_mnist(root):
            folder, found = root, _find_mnist(root)
        full = len(found) == 4
        if not full and _arg(args, "download", bool, False, self.name):
            self.download(folder)
            found = _find_mnist(folder)
            full = len(found) == 4
        if full or {"test_images", "test_labels"} <= found.keys():
            return folder, found
        names = ", ".join(s + ".gz" for s in MNIST_FILES.values())
        have = f" (found only {', '.join(p.name for p in found.values())})" if found else ""
        raise _error(
            f"dataset 'mnist': no MNIST files in {_where(folder)}{have}",
            folder,
            hint=f"put the IDX files ({names}; or only the two t10k-* ones) there, {_root_hint('mnist')}, "
            "or set data.download: true (needs internet)",
        )

    def download(self, folder: Path) -> None:
        from torchvision.datasets import MNIST

        try:
            folder.mkdir(parents=True, exist_ok=True)
            for train in (True, False):
                MNIST(str(folder), train=train, download=True)
        except Exception as e:  # noqa: BLE001 - any download failure becomes a readable error
            raise _error(
                f"dataset 'mnist': download into {folder} failed: {e}",
                folder,
                hint="check the internet connection, or put the IDX files there by hand",
            ) from None

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        folder, found = self.files(root, args)
        test_images, test_labels = _load_idx_pair(str(found["test_images"]), str(found["test_labels"]))
        val = _fraction(args, "val_fraction", VAL_FRACTION, self.name)
        if len(found) < 4:  # only the official test set: cut train / val / test from it
            test = _fraction(args, "test_fraction", TEST_FRACTION, self.name)
            parts = three_way_split(test_labels.numpy(), seed, val, test)
            return ArrayDataset(test_images, test_labels, parts[split], transform, DIGIT_CLASSES)
        if split == "test":
            return ArrayDataset(test_images, test_labels, None, transform, DIGIT_CLASSES)
        images, labels = _load_idx_pair(str(found["train_images"]), str(found["train_labels"]))
        parts = train_val_split(labels.numpy(), seed, val)
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
        raise _error(
            f"dataset 'usps': cannot read {path}: {e}",
            path,
            hint="expected HDF5 with train/data (N, 256), train/target, test/data, test/target",
        ) from None
    return out


class Usps:
    """USPS digits from usps.h5: 7,291 train (minus a seeded 10% val) and 2,007 test, 16x16."""

    name = "usps"

    def info(self, root: Path, args: dict) -> DatasetInfo:
        return DatasetInfo(channels=1, size=16, classes=DIGIT_CLASSES, needs_root=True, default_dir="usps")

    def path(self, root: Path, args: dict) -> Path:
        folder = _folder(root, args, "usps", self.name)
        file = _arg(args, "file", str, "usps.h5", self.name)
        if not (folder / file).is_file() and not _given(args, "folder") and (root / file).is_file():
            folder = root
        if not (folder / file).is_file():
            raise _error(
                f"dataset 'usps': no {file} in {_where(folder)}",
                folder,
                hint=f"put usps.h5 (HDF5 with train/ and test/ groups) there, {_root_hint('usps')}",
            )
        return folder / file

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        parts = _load_usps(str(self.path(root, args)))
        if split == "test":
            images, labels = parts["test"]
            return ArrayDataset(images, labels, None, transform, DIGIT_CLASSES)
        images, labels = parts["train"]
        val = _fraction(args, "val_fraction", VAL_FRACTION, self.name)
        cut = train_val_split(labels.numpy(), seed, val)
        return ArrayDataset(images, labels, cut[split], transform, DIGIT_CLASSES)


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

    name = "cifar10"
    subdir = "cifar-10-batches-py"

    def info(self, root: Path, args: dict) -> DatasetInfo:
        return DatasetInfo(
            channels=3, size=32, classes=CIFAR10_CLASSES, needs_root=True, default_dir="cifar10"
        )

    def folder(self, root: Path, args: dict) -> tuple[Path, bool]:
        folder = _folder(root, args, "cifar10", self.name)
        download = bool(_arg(args, "download", bool, False, self.name))
        if not (folder / self.subdir).is_dir() and not _given(args, "folder"):
            if (root / self.subdir).is_dir():
                folder = root
        if not (folder / self.subdir).is_dir() and not download:
            raise _error(
                f"dataset 'cifar10': no {self.subdir}/ in {_where(folder)}",
                folder,
                hint=f"set data.download: true (needs internet) to fetch it there, {_root_hint('cifar10')}",
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
            raise _error(
                f"dataset 'cifar10': cannot load from {folder}: {e}",
                folder,
                hint="check the internet connection (data.download: true) or the files there",
            ) from None
        if split == "test":
            return ArrayDataset(images, labels, None, transform, CIFAR10_CLASSES)
        val = _fraction(args, "val_fraction", VAL_FRACTION, self.name)
        cut = train_val_split(labels.numpy(), seed, val)
        return ArrayDataset(images, labels, cut[split], transform, CIFAR10_CLASSES)


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

    name = "image_folder"

    def folder(self, root: Path, args: dict) -> Path:
        folder = _folder(root, args, None, self.name)
        if not (folder / "train").is_dir():
            raise _error(
                f"dataset 'image_folder': no train/ in {_where(folder)}",
                folder,
                hint="lay images out as train/<class>/*.png (and val/, test/) and point data.folder "
                "(or data.root, or the environment variable ENGINE_DATA) at that folder",
            )
        return folder

    def channels(self, args: dict) -> int:
        channels = _arg(args, "channels", int, 3, self.name)
        if channels not in (1, 3):
            raise _error(
                f"dataset 'image_folder': data.channels must be 1 or 3, got {channels}",
                path="data.channels",
                hint="1 reads greyscale, 3 reads RGB",
            )
        return channels

    def classes(self, folder: Path) -> list[str]:
        classes = _class_dirs(folder / "train")
        if not classes:
            raise _error(
                f"dataset 'image_folder': no class folders in {folder / 'train'}",
                folder / "train",
                hint="put each class's images in its own subfolder: train/<class>/*.png",
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
            raise _error(
                f"dataset 'image_folder': {split}/ has classes not in train/: {', '.join(extra)}",
                where,
                hint="every class folder of val/ and test/ must also exist in train/",
            )
        samples = list(_scan_folder(str(where), tuple(classes)))
        if not samples:
            raise _error(f"dataset 'image_folder': no images in {where}", where,
                         hint="supported: .png .jpg .jpeg .bmp .ppm .pgm .tif .tiff .webp")  # fmt: skip
        return samples

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        folder = self.folder(root, args)
        classes = self.classes(folder)
        channels = self.channels(args)
        if (folder / split).is_dir():
            samples = self.samples(folder, split, classes)
        elif split == "val":
            train = self.samples(folder, "train", classes)
            val = _fraction(args, "val_fraction", VAL_FRACTION, self.name)
            cut = train_val_split(np.array([label for _, label in train]), seed, val)
            samples = [train[i] for i in cut["val"]]
        else:
            raise _error(
                f"dataset 'image_folder': no {split}/ in {folder}",
                folder,
                hint=f"add {split}/<class>/* images there",
            )
        if split == "train" and not (folder / "val").is_dir():
            val = _fraction(args, "val_fraction", VAL_FRACTION, self.name)
            cut = train_val_split(np.array([label for _, label in samples]), seed, val)
            samples = [samples[i] for i in cut["train"]]
        return FileImageDataset(samples, channels, transform, classes)


DATASETS.add("digits", Digits())
DATASETS.add("mnist", Mnist())
DATASETS.add("usps", Usps())
DATASETS.add("cifar10", Cifar10())
DATASETS.add("image_folder", ImageFolder())
