"""Super-resolution datasets: `sr_benchmark` (Set5, Set14, CBSD68 for evaluation) and
`sr_patches` (random training patches). Both read `sr_benchmarks/<set>/*.png`.

An item is `(lr, hr)`: float tensors in [0, 1], the high-resolution image `hr` [3, H, W] and its
low-resolution input `lr` [3, H/s, W/s] for the scale s (`scale`: 2, 3 or 4). Greyscale PNGs
(Set14's bridge) are converted to RGB (three equal channels).

The LR image is made by bicubic downscaling of the uint8 HR image with PIL's
`Image.resize(..., BICUBIC)`, the usual PIL-based substitute for MATLAB's `imresize` (whose
antialiased bicubic kernel the papers' LR images come from; PIL's is antialiased too, but its
rounding differs slightly, so figures are close to, not identical with, the MATLAB-made ones).

- `sr_benchmark`: args `set` ("Set5", "Set14" or "CBSD68"), `scale`, `folder` (default
  "sr_benchmarks"). Every image, cropped from the top left to a multiple of the scale (MATLAB
  `modcrop`), in sorted file-name order. These are evaluation sets: the train, val and test
  splits all give the whole set. The images differ in size, so batches hold one image
  (`eval_batch_size: 1`); the dataset's `collate` refuses a batch of mixed sizes.
- `sr_patches`: args `set` (default "CBSD68"), `scale`, `patch` (the HR patch side, a multiple of
  the scale, default 96), `repeat` (train: patches per image per epoch, default 16), `flip`
  (train: random horizontal and vertical flips and 90-degree rotations, default true),
  `val_images` (default 8: the last images of the sorted list are held out; val and test are
  both these held-out images, with no third split to cut from 68 images), `folder`. Train draws
  a random HR crop (and flips) from torch's global generator, which the runner reseeds per
  batch, then makes the LR patch from the (flipped) crop, so the pair is aligned by
  construction. Val and test take one deterministic centre crop per held-out image.
  Multi-scale training (VDSR's and DRRN's: one network for x2, x3 and x4): `scale: [2, 3, 4]`.
  Each training patch draws its scale; the LR patch is then given already bicubic-upscaled back
  to the HR size (`upscale_bicubic`, the upscale `super_resolve` applies with
  `upscaled_input: true`), so patches of different scales share a batch. Such pairs suit only
  networks that take the bicubic upscale. Val and test hold each held-out image at every scale
  (image-major within a scale). `patch` must then divide by every scale.

`info()` gives 3 channels, no fixed size, no classes, and (where `DatasetInfo` has the field)
`spec_params = {"scale": scale}`, so an upscaling spec can read the scale.
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from engine.compiler.ir import located_error
from engine.train.data.datasets import DatasetInfo, dataset_arg, dataset_folder, describe_folder, root_hint
from engine.train.registry import DATASETS

FOLDER = "sr_benchmarks"
SETS = ("Set5", "Set14", "CBSD68")
SCALES = (2, 3, 4)


@lru_cache(maxsize=4)
def load_set(folder: str, name: str) -> tuple[tuple[str, np.ndarray], ...]:
    """The set's PNGs as (file stem, uint8 RGB array [H, W, 3]), sorted by file name."""
    from PIL import Image

    paths = sorted(Path(folder, name).glob("*.png"))
    if not paths:
        raise located_error(f"no PNG images in {describe_folder(Path(folder, name))}", Path(folder, name),
                            path="data", hint=f"put the {name} PNGs there, {root_hint(FOLDER)}")
    out = []
    for path in paths:
        try:
            with Image.open(path) as img:
                out.append((path.stem, np.asarray(img.convert("RGB")).copy()))
        except OSError as e:
            raise located_error(f"cannot read {path}: {e}", path, path="data",
                                hint=root_hint(FOLDER)) from None
    return tuple(out)


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """The top-left part of an image [H, W, C] whose sides are multiples of `scale`."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def bicubic_down(hr: np.ndarray, scale: int) -> np.ndarray:
    """uint8 [H, W, 3] (sides multiples of `scale`) -> uint8 [H/scale, W/scale, 3] by PIL bicubic."""
    from PIL import Image

    h, w = hr.shape[:2]
    bicubic = getattr(Image, "Resampling", Image).BICUBIC
    return np.asarray(Image.fromarray(np.ascontiguousarray(hr)).resize((w // scale, h // scale), bicubic))


def upscale_bicubic(lr: Tensor, scale: int) -> Tensor:
    """LR images [..., C, h, w] -> their bicubic upscale [..., C, h*s, w*s], clamped to [0, 1]
    (torch's bicubic, align_corners=False: the upscale `super_resolve` gives an
    `upscaled_input` network and its bicubic baseline)."""
    import torch.nn.functional as F
    batched = lr.dim() == 4
    x = lr.float() if batched else lr.float()[None]
    size = (x.shape[-2] * scale, x.shape[-1] * scale)
    up = F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    return up if batched else up[0]


def to_tensor(image: np.ndarray) -> Tensor:
    """uint8 [H, W, 3] -> float32 [3, H, W] in [0, 1]."""
    return torch.from_numpy(image.copy()).permute(2, 0, 1).float().div(255)  # a copy: PIL's are read-only


def collate_pairs(items: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Stack (lr, hr) items into a batch; images of different sizes cannot share one."""
    lrs, hrs = zip(*items)
    sizes = sorted({tuple(hr.shape[-2:]) for hr in hrs})
    if len(sizes) > 1 or len({tuple(lr.shape) for lr in lrs}) > 1:
        raise ValueError(f"an SR batch mixes image sizes {sizes}: the benchmark images differ in "
                         "size, so evaluate them one at a time (data.eval_batch_size: 1)")
    return torch.stack(lrs), torch.stack(hrs)


class BenchmarkDataset(Dataset):
    """Whole images, modcropped to the scale, with their bicubic LR inputs."""

    collate = staticmethod(collate_pairs)

    def __init__(self, images: tuple[tuple[str, np.ndarray], ...], scale: int):
        self.names = [name for name, _ in images]
        self.images, self.scale, self.classes = [im for _, im in images], scale, []

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        hr = modcrop(self.images[i], self.scale)
        return to_tensor(bicubic_down(hr, self.scale)), to_tensor(hr)


class PatchDataset(Dataset):
    """HR patches with their bicubic LR: random (flipped, rotated) for training, else centred."""

    collate = staticmethod(collate_pairs)

    def __init__(self, images: list[np.ndarray], scales: tuple[int, ...], patch: int, train: bool,
                 flip: bool, repeat: int):
        self.images, self.scales, self.patch = images, scales, patch
        self.train, self.flip, self.repeat, self.classes = train, flip, repeat, []
        # val/test hold every image at every scale; training draws a scale per patch
        self.copies = repeat if train else repeat * len(scales)

    def __len__(self) -> int:
        return len(self.images) * self.copies

    def scale_of(self, i: int) -> int:
        if len(self.scales) == 1:
            return self.scales[0]
        if self.train:
            return self.scales[int(torch.randint(0, len(self.scales), ()))]
        return self.scales[(i % len(self)) // (len(self.images) * self.repeat)]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"patch {i} of {len(self)}")  # also ends iteration over the dataset
        image = self.images[i % len(self.images)]
        h, w = image.shape[:2]
        p = self.patch
        if self.train:
            top = int(torch.randint(0, h - p + 1, ()))
            left = int(torch.randint(0, w - p + 1, ()))
        else:
            top, left = (h - p) // 2, (w - p) // 2
        hr = image[top:top + p, left:left + p]
        if self.train and self.flip:
            hflip, vflip = (bool(x) for x in torch.randint(0, 2, (2,)))
            hr = flip_rotate(hr, hflip, vflip, int(torch.randint(0, 4, ())))
        scale = self.scale_of(i)
        lr = to_tensor(bicubic_down(hr, scale))
        if len(self.scales) > 1:  # one HR size for every scale: the LR comes upscaled
            lr = upscale_bicubic(lr, scale)
        return lr, to_tensor(hr)


def flip_rotate(image: np.ndarray, hflip: bool, vflip: bool, quarter_turns: int) -> np.ndarray:
    """An image [H, W, C] flipped left-right, top-bottom, then turned by 90 degrees k times."""
    if hflip:
        image = image[:, ::-1]
    if vflip:
        image = image[::-1]
    return np.rot90(image, quarter_turns, axes=(0, 1)) if quarter_turns else image


class _SRSource:
    name = ""
    default_set: str | None = None
    multi_scale = False  # `scale: [2, 3, 4]` allowed

    def set_name(self, args: dict) -> str:
        value = dataset_arg(args, "set", str, self.default_set, self.name)
        if value is None:
            raise located_error(f"dataset {self.name!r}: data.set is required", path="data.set",
                                hint=f"one of {', '.join(SETS)}")
        if value not in SETS:
            raise located_error(f"dataset {self.name!r}: unknown set {value!r}", path="data.set",
                                hint=f"use one of {', '.join(SETS)}")
        return value

    def scale(self, args: dict) -> int:
        value = dataset_arg(args, "scale", int, None, self.name)
        if value not in SCALES:
            got = "data.scale is required" if value is None else f"data.scale must be 2, 3 or 4, got {value}"
            raise located_error(f"dataset {self.name!r}: {got}", path="data.scale", hint="e.g. `scale: 4`")
        return value

    def scales(self, args: dict) -> tuple[int, ...]:
        """`scale` as a tuple: one scale, or several (`scale: [2, 3, 4]`) where allowed."""
        value = args.get("scale")
        if not isinstance(value, list):
            return (self.scale(args),)
        if not self.multi_scale:
            raise located_error(f"dataset {self.name!r}: data.scale must be one scale here, got {value}",
                                path="data.scale", hint="e.g. `scale: 4`; evaluate each scale in turn")
        if not value or len(set(value)) != len(value):
            raise located_error(f"dataset {self.name!r}: data.scale lists must hold distinct scales, got "
                                f"{value}", path="data.scale", hint="e.g. `scale: [2, 3, 4]`")
        return tuple(self.scale({"scale": v}) for v in value)

    def images(self, root: Path, args: dict) -> tuple[tuple[str, np.ndarray], ...]:
        folder = dataset_folder(root, args, FOLDER, self.name)
        name = self.set_name(args)
        if not (folder / name).is_dir():
            raise located_error(f"dataset {self.name!r}: no {name}/ in {describe_folder(folder)}", folder,
                                path="data", hint=f"put the {name} PNGs there, {root_hint(FOLDER)}")
        return load_set(str(folder), name)

    def info(self, root: Path, args: dict) -> DatasetInfo:
        extra = {}
        if "spec_params" in {f.name for f in dataclasses.fields(DatasetInfo)}:
            scales = self.scales(args)
            # a multi-scale set feeds upscaled inputs: no spec reads its scale
            extra["spec_params"] = {"scale": scales[0]} if len(scales) == 1 else {}
        return DatasetInfo(channels=3, size=None, classes=[], needs_root=True, default_dir=FOLDER,
                           **extra)

    def no_transform(self, transform) -> None:
        if transform is not None:
            raise located_error(f"dataset {self.name!r} takes no data.transforms", path="data.transforms",
                                hint="an image transform would change one side of the (lr, hr) pair only; "
                                "remove it")


class SRBenchmark(_SRSource):
    # its data.args keys; sr_patches' training-only ones (patch, repeat, flip, val_images) are
    # taken and ignored, so that evaluating a recipe on a benchmark only swaps the dataset
    # (`--set data.dataset=sr_benchmark --set data.args.set=Set5`), as the recipes document
    ARGS = ("folder", "set", "scale", "patch", "repeat", "flip", "val_images")
    name = "sr_benchmark"

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        self.no_transform(transform)
        scale = self.scales(args)[0]  # one scale: a list gets its own error
        return BenchmarkDataset(self.images(root, args), scale)


class SRPatches(_SRSource):
    ARGS = ("folder", "set", "scale", "patch", "repeat", "flip", "val_images")  # its data.args keys
    name = "sr_patches"
    default_set = "CBSD68"
    multi_scale = True

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        self.no_transform(transform)
        scales = self.scales(args)
        patch = dataset_arg(args, "patch", int, 96, self.name)
        step = math.lcm(*scales)
        if patch < step or patch % step:
            what = f"the scale ({scales[0]})" if len(scales) == 1 else f"every scale ({step})"
            raise located_error(f"dataset 'sr_patches': data.patch ({patch}) must be a positive multiple of "
                                f"{what}", path="data.patch",
                                hint=f"e.g. `patch: {max(1, round(patch / step)) * step}`")
        repeat = dataset_arg(args, "repeat", int, 16, self.name)
        if repeat < 1:
            raise located_error(f"dataset 'sr_patches': data.repeat must be >= 1, got {repeat}",
                                path="data.repeat", hint="e.g. `repeat: 16`")
        flip = dataset_arg(args, "flip", bool, True, self.name)
        images = [im for _, im in self.images(root, args)]
        held = dataset_arg(args, "val_images", int, 8, self.name)
        if not 1 <= held < len(images):
            raise located_error(f"dataset 'sr_patches': data.val_images must be in 1..{len(images) - 1} "
                                f"(the set has {len(images)} images), got {held}", path="data.val_images",
                                hint="e.g. `val_images: 8`")
        smallest = min(min(im.shape[:2]) for im in images)
        if patch > smallest:
            raise located_error(f"dataset 'sr_patches': data.patch ({patch}) is larger than the smallest "
                                f"image side ({smallest})", path="data.patch", hint="e.g. `patch: 96`")
        if split == "train":
            return PatchDataset(images[:-held], scales, patch, True, flip, repeat)
        return PatchDataset(images[-held:], scales, patch, False, False, 1)


DATASETS.add("sr_benchmark", SRBenchmark())
DATASETS.add("sr_patches", SRPatches())
