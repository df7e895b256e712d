"""Convolutions: plain, transposed (upsampling) and masked (PixelCNN)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.blocks.registry import register
from engine.blocks.shape_rules import Rule, conv_size, numel, pair


@register("conv", category="conv", in_dim=1, layout=True,
          example={"args": {"out": 8, "k": 3, "pad": 1}, "inputs": [[2, 4, 10, 10]]})
class Conv(nn.Conv2d):
    """2-D convolution (LeCun et al., 1998); `in_size` channels are inferred.

    [B, C, H, W] -> [B, out, H', W'] with H' = (H + 2*pad - dilation*(k-1) - 1) // stride + 1.
    `groups: ${input.channels}` gives a depthwise convolution; `pad: same` keeps H and W.
    """

    # a fresh tensor its backward does not save: a later in-place op may overwrite it
    # (engine/compiler/liveness.py)
    overwritable_output = True

    def __init__(self, in_size: int, out: int, k: int | list[int] = 1,
                 stride: int | list[int] = 1, pad: int | list[int] | str = 0,
                 dilation: int | list[int] = 1, groups: int = 1, bias: bool = True,
                 pad_mode: str = "zeros"):
        super().__init__(in_size, out, _pair(k), _pair(stride), _pair(pad), _pair(dilation),
                         groups, bias, pad_mode)

    @staticmethod
    def shape_rule(args: dict, shapes: list) -> Rule | None:
        """[B, C, H, W] -> [B, out, H', W'], out * C/groups * kh * kw MACs per output position."""
        if len(shapes) != 1 or len(shapes[0]) != 4:
            return None
        b, c, h, w = shapes[0]
        k, stride = pair(args.get("k", 1)), pair(args.get("stride", 1))
        dilation, pad, groups = pair(args.get("dilation", 1)), args.get("pad", 0), args.get("groups", 1)
        if None in (k, stride, dilation) or not isinstance(groups, int) or groups < 1 \
                or c % groups or args["out"] % groups or min(*k, *stride, *dilation) < 1:
            return None
        if pad == "same" and stride == (1, 1):
            size = (h, w)
        elif pad == "valid":
            size = (conv_size(h, k[0], stride[0], 0, dilation[0]),
                    conv_size(w, k[1], stride[1], 0, dilation[1]))
        elif pair(pad) is not None and min(pair(pad)) >= 0:
            p = pair(pad)
            size = (conv_size(h, k[0], stride[0], p[0], dilation[0]),
                    conv_size(w, k[1], stride[1], p[1], dilation[1]))
        else:
            return None
        if min(size) <= 0:
            return None
        out = (b, args["out"], *size)
        return [out], numel(out) * (c // groups) * k[0] * k[1]

    def label(self) -> str:
        """Paper shorthand: `3x3 conv, 128, /2` (`dw` for depthwise)."""
        kh, kw = self.kernel_size
        text = f"{kh}x{kw} conv, {self.out_channels}"
        if self.stride[0] > 1:
            text += f", /{self.stride[0]}"
        if self.groups > 1:
            text += ", dw" if self.groups == self.in_channels else f", {self.groups} groups"
        return text


@register("conv_transpose", category="conv", in_dim=1, layout=True,
          example={"args": {"out": 6, "k": 4, "stride": 2, "pad": 1}, "inputs": [[2, 4, 5, 5]]})
class ConvTranspose(nn.ConvTranspose2d):
    """Transposed ("fractionally strided") 2-D convolution (Dumoulin & Visin, 2016); upsamples.

    [B, C, H, W] -> [B, out, H', W'] with
    H' = (H - 1)*stride - 2*pad + dilation*(k-1) + output_pad + 1 (`k: 4, stride: 2, pad: 1`
    doubles H and W). Parameters are laid out as `nn.ConvTranspose2d`'s.
    """

    def __init__(self, in_size: int, out: int, k: int | list[int] = 1,
                 stride: int | list[int] = 1, pad: int | list[int] = 0,
                 output_pad: int | list[int] = 0, dilation: int | list[int] = 1,
                 groups: int = 1, bias: bool = True):
        super().__init__(in_size, out, _pair(k), _pair(stride), _pair(pad), _pair(output_pad),
                         groups, bias, _pair(dilation))

    def label(self) -> str:
        """Paper shorthand: `4x4 conv transpose, 64, x2`."""
        kh, kw = self.kernel_size
        text = f"{kh}x{kw} conv transpose, {self.out_channels}"
        if self.stride[0] > 1:
            text += f", x{self.stride[0]}"
        if self.groups > 1:
            text += f", {self.groups} groups"
        return text


@register("masked_conv", category="conv", in_dim=1, layout=True,
          example={"args": {"out": 6, "k": 5, "mask": "A"}, "inputs": [[2, 3, 7, 7]]})
class MaskedConv(nn.Conv2d):
    """PixelCNN masked convolution (van den Oord et al., 2016); `k` odd, padded to keep H, W.

    [B, C, H, W] -> [B, out, H, W]. Output pixel (i, j) sees only input pixels before it in
    raster order: `mask: A` (the first layer) excludes pixel (i, j) itself, `mask: B` (later
    layers) includes it. The mask is spatial only (no per-colour-channel split); it is the
    non-persistent buffer `mask`, so the state dict is `nn.Conv2d`'s.
    """

    def __init__(self, in_size: int, out: int, k: int = 3, mask: str = "B", bias: bool = True):
        if k % 2 != 1:
            raise ValueError(f"masked_conv needs an odd kernel size k, got {k}")
        if mask not in ("A", "B"):
            raise ValueError(f"masked_conv mask must be 'A' or 'B', got {mask!r}")
        self.mask_type = mask
        super().__init__(in_size, out, k, 1, k // 2, bias=bias)
        self.register_buffer("mask", torch.empty(1, 1, k, k), persistent=False)
        self._fill_mask()

    def _fill_mask(self) -> None:
        k = self.kernel_size[0]
        centre = k // 2
        mask = torch.ones(k, k)
        mask[centre, centre + (self.mask_type == "B"):] = 0
        mask[centre + 1:] = 0
        with torch.no_grad():
            self.mask.copy_(mask.view(1, 1, k, k))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if getattr(self, "mask", None) is not None:  # nn.Conv2d.__init__ calls this before it exists
            self._fill_mask()

    def label(self) -> str:
        """Paper shorthand: `7x7 masked conv A, 64`."""
        k = self.kernel_size[0]
        return f"{k}x{k} masked conv {self.mask_type}, {self.out_channels}"

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


def _pair(value):
    return tuple(value) if isinstance(value, list) else value
