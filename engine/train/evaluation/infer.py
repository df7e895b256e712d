"""`engine infer`: run a trained classifier on image files and name its top-k classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from engine.compiler.ir import located_error
from engine.train.data import dataset_info
from engine.train.data.transforms import build_transform


def read_image(path: str, channels: int) -> torch.Tensor:
    """An image file at its own size as [channels, H, W] in [0, 1] (1: grey, 3: RGB)."""
    try:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
    except (OSError, ValueError) as err:
        raise located_error(f"cannot read the image {path}: {err}", path,
                            hint="give image files (PNG, JPEG, ...) that exist") from None
    image = torch.from_numpy(pixels / 255.0)
    return image[None] if image.dim() == 2 else image.permute(2, 0, 1)


def load_image(path: str, shape: tuple[int, ...]) -> torch.Tensor:
    """An image file as the network's input: channels, size and range [0, 1] of its spec."""
    image = read_image(path, shape[1])
    return F.interpolate(image[None], size=(shape[2], shape[3]), mode="bilinear",
                         align_corners=False, antialias=True)[0]


def input_shape(run) -> tuple[int, ...]:
    """The shape of the run's (first network's) first input, e.g. [B, C, H, W]."""
    return tuple(next(iter(next(iter(run.shaped.inputs.values())).values())).shape)


def eval_transform(run):
    """The recipe's eval transforms (None when it has none), as the eval datasets apply them."""
    transforms = run.recipe["data"].get("transforms") or {}
    return build_transform(list(transforms.get("eval") or []), "data.transforms.eval")


def output_folder(args) -> Path | None:
    """`engine infer -o DIR`: the folder for the written files (created), or None: beside each
    input."""
    if not args.output:
        return None
    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def classify_files(run, paths: list[str], top_k: int):
    data = run.recipe["data"]
    info = dataset_info(data["dataset"], data.get("root"), dict(data.get("args") or {}))
    shape, transform = input_shape(run), eval_transform(run)
    for path in paths:
        image = load_image(path, shape)
        image = transform(image) if transform else image
        probs = run.procedure.predict(image[None].to(run.device))[0]
        values, indices = probs.topk(min(top_k, probs.numel()))
        yield Path(path).name, [(info.classes[i], float(v)) for v, i in zip(values, indices)]
