"""The `unpaired` dataset: two image datasets as the domains A and B of an unpaired translation.

An item is `(images, labels)`: images = A's image and B's image, both resized to size x size
(bilinear, antialiased), concatenated on the channel dim ([2C, S, S]); labels = tensor([label_a,
label_b]). Item i pairs A's item i (modulo len A) with B's item perm[i modulo len B], perm a
permutation seeded by (seed, split) and independent of A's order: the two images of an item are
unrelated (CycleGAN's unaligned dataset), and which ones meet is fixed by the seed. The length is
max(len A, len B), so every image of the larger domain is seen once per epoch.

Args: `a`, `b` (dataset names, e.g. mnist and usps; same channel count), `size` (default 32),
`a_args`, `b_args` (each dataset's own args). Each split is the same split of both datasets.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from engine.compiler.ir import located_error
from engine.train.data.datasets import DatasetInfo, build_dataset, dataset_arg, dataset_info
from engine.train.registry import DATASETS

SPLIT_SALT = {"train": 0, "val": 1, "test": 2}


def resize(image: Tensor, size: int) -> Tensor:
    """[C, H, W] -> [C, size, size], bilinear with antialiasing, clamped back to [0, 1]."""
    if image.shape[-1] == size and image.shape[-2] == size:
        return image
    out = F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True,
                        align_corners=False)[0]
    return out.clamp_(0, 1)


class ResizedDataset(Dataset):
    """Another dataset's items with the image resized to size x size (one domain)."""

    def __init__(self, source: Dataset, size: int):
        self.source, self.size = source, size

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        image, label = self.source[i]
        return resize(image, self.size), int(label)


class UnpairedDataset(Dataset):
    def __init__(self, a: Dataset, b: Dataset, seed: int):
        self.a, self.b = a, b
        generator = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(len(b), generator=generator)

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        image_a, label_a = self.a[i % len(self.a)]
        image_b, label_b = self.b[int(self.perm[i % len(self.b)])]
        return torch.cat([image_a, image_b]), torch.tensor([label_a, label_b])


class Unpaired:
    ARGS = ("a", "b", "a_args", "b_args", "size")  # its data.args keys
    name = "unpaired"

    def names(self, args: dict) -> tuple[str, str]:
        a, b = dataset_arg(args, "a", str, None, self.name), dataset_arg(args, "b", str, None, self.name)
        if a is None or b is None:
            raise located_error("dataset 'unpaired' needs data.args.a and data.args.b (two dataset "
                                "names)", path="data.args", hint="write e.g. `args: {a: mnist, b: usps}`")
        for key, value in (("a", a), ("b", b)):
            if value not in DATASETS or value == self.name:
                raise located_error(f"dataset 'unpaired': data.args.{key} names no dataset: {value!r}",
                                    path=f"data.args.{key}", hint=DATASETS.hint(value))
        return a, b

    def info(self, root: Path, args: dict) -> DatasetInfo:
        a, b = self.names(args)
        info_a = dataset_info(a, root, args.get("a_args"))
        info_b = dataset_info(b, root, args.get("b_args"))
        if info_a.channels != info_b.channels:  # the generators map C channels to C channels
            raise located_error(f"dataset 'unpaired': {a} has {info_a.channels} channels, {b} "
                                f"{info_b.channels}", path="data.args",
                                hint="pair datasets with the same number of channels")
        return DatasetInfo(channels=2 * info_a.channels, size=dataset_arg(args, "size", int, 32, self.name),
                           classes=info_a.classes, needs_root=info_a.needs_root or info_b.needs_root,
                           default_dir=None)

    def domains(self, root: Path, split: str, seed: int, transform,
                args: dict) -> tuple[ResizedDataset, ResizedDataset]:
        """The split of A and of B, each resized (what the unpaired items are made of)."""
        a, b = self.names(args)
        size = dataset_arg(args, "size", int, 32, self.name)
        self.info(root, args)  # checks the channel counts
        return (ResizedDataset(build_dataset(a, root, split, seed, transform, args.get("a_args")),
                               size),
                ResizedDataset(build_dataset(b, root, split, seed, transform, args.get("b_args")),
                               size))

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        domain_a, domain_b = self.domains(root, split, seed, transform, args)
        return UnpairedDataset(domain_a, domain_b, seed * 3 + SPLIT_SALT[split] + 1)


DATASETS.add("unpaired", Unpaired())
