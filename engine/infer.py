"""`engine infer`: run a trained classifier on image files and name its top-k classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from engine.data import dataset_info
from engine.data.transforms import build_transform
from engine.ir import Diagnostic, Loc, SpecError


def read_image(path: str, channels: int) -> torch.Tensor:
    """An image file at its own size as [channels, H, W] in [0, 1] (1: grey, 3: RGB)."""
    try:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
    except (OSError, ValueError) as err:
        raise SpecError([Diagnostic(f"cannot read the image {path}: {err}", Loc(str(path)),
                                    hint="give image files (PNG, JPEG, ...) that exist")]) from None
    image = torch.from_numpy(pixels / 255.0)
    return image[None] if image.dim() == 2 else image.permute(2, 0, 1)


def load_image(path: str, shape: tuple[int, ...]) -> torch.Tensor:
    """An image file as the network's input: channels, size and range [0, 1] of its spec."""
    image = read_image(path, shape[1])
    return F.interpolate(image[None], size=(shape[2], shape[3]), mode="bilinear",
                         align_corners=False, antialias=True)[0]


def classify_files(run, paths: list[str], top_k: int):
    data = run.recipe["data"]
    info = dataset_info(data["dataset"], data.get("root"), dict(data.get("args") or {}))
    shape = next(iter(next(iter(run.shaped.inputs.values())).values())).shape
    transform = build_transform(list((data.get("transforms") or {}).get("eval") or []),
                                "data.transforms.eval")
    for path in paths:
        image = load_image(path, shape)
        image = transform(image) if transform else image
        probs = run.procedure.predict(image[None].to(run.device))[0]
        values, indices = probs.topk(min(top_k, probs.numel()))
        yield Path(path).name, [(info.classes[i], float(v)) for v, i in zip(values, indices)]
