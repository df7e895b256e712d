"""Resampling without weights: interpolation (nearest, bilinear, bicubic, area) and the
sub-pixel rearrangement of channels to space (pixel shuffle)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from engine.blocks.registry import register


@register("upsample", category="resample", layout=None, inputs=(1, 2),
          example={"args": {"scale": 2}, "inputs": [[2, 3, 4, 5]]})
class Upsample(nn.Module):
    """Interpolate a feature map by a `scale` factor, to a fixed `size`, or (`like: true`) to
    the size of a second input (give exactly one).

    [B, C, H, W] -> [B, C, H*scale, W*scale] (floored), or [B, C, size, size] / [B, C, *size],
    or with `like: true` and `in: [x, ref]`, [B, C, *ref.shape[2:]], read when the model runs
    (torchvision's segmentation heads: `F.interpolate(x, size=image.shape[-2:])`).
    `mode` is one of nearest, bilinear, bicubic, area, nearest-exact; `align_corners` applies to
    bilinear and bicubic only (PyTorch's default, false, when left out). Equals
    `F.interpolate`; no parameters.
    """

    def __init__(self, scale: float | None = None, size: int | list[int] | None = None,
                 mode: str = "nearest", align_corners: bool | None = None, like: bool = False):
        super().__init__()
        if (scale is not None) + (size is not None) + bool(like) != 1:
            raise ValueError("give exactly one of scale: (a factor), size: (the output size) and "
                             "like: true (the size of a second input)")
        modes = ("nearest", "bilinear", "bicubic", "area", "nearest-exact")
        if mode not in modes:
            raise ValueError(f"mode must be one of {', '.join(modes)}, not {mode!r}")
        if align_corners is not None and mode not in ("bilinear", "bicubic"):
            raise ValueError("align_corners applies to bilinear and bicubic modes only")
        self.scale, self.mode, self.align_corners = scale, mode, align_corners
        self.size = tuple(size) if isinstance(size, list) else size
        self.like = bool(like)

    def label(self) -> str:
        how = f"x{self.scale:g}" if self.scale is not None else \
            "to its 2nd input's size" if self.like else f"to {self.size}"
        return f"upsample {how}, {self.mode}"

    def forward(self, x: Tensor, ref: Tensor | None = None) -> Tensor:
        if self.like and ref is None:
            raise ValueError("upsample with like: true needs a second input, whose size it "
                             "takes: in: [x, ref]")
        if ref is not None and not self.like:
            raise ValueError("upsample takes a second input only with like: true")
        size = tuple(ref.shape[2:]) if ref is not None else self.size
        return F.interpolate(x, size=size, scale_factor=self.scale, mode=self.mode,
                             align_corners=self.align_corners)

    def extra_repr(self) -> str:
        how = f"scale={self.scale}" if self.scale is not None else \
            "like=True" if self.like else f"size={self.size}"
        return f"{how}, mode={self.mode!r}"


@register("pixel_shuffle", category="resample", layout=True,
          example={"args": {"scale": 2}, "inputs": [[2, 12, 3, 4]]})
class PixelShuffle(nn.PixelShuffle):
    """Sub-pixel convolution's rearrangement (Shi et al., 2016, ESPCN): channels to space.

    [B, C*r^2, H, W] -> [B, C, H*r, W*r] with r = `scale`: output pixel (h*r + i, w*r + j) of
    channel c is input channel c*r^2 + i*r + j at (h, w), as `nn.PixelShuffle`. No parameters;
    the conv before it makes the C*r^2 channels.
    """

    def __init__(self, scale: int):
        if scale < 1:
            raise ValueError(f"pixel_shuffle: scale must be a positive integer, got {scale}")
        super().__init__(scale)

    def label(self) -> str:
        return f"pixel shuffle x{self.upscale_factor}"

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-3] % self.upscale_factor ** 2:
            raise ValueError(f"pixel_shuffle x{self.upscale_factor}: {x.shape[-3]} channels are not "
                             f"divisible by scale^2 = {self.upscale_factor ** 2}")
        return super().forward(x)
