"""Convolutions."""

from __future__ import annotations

from torch import nn

from blocks.registry import register


@register("conv", in_dim=1, layout=True,
          example={"args": {"out": 8, "k": 3, "pad": 1}, "inputs": [[2, 4, 10, 10]]})
class Conv(nn.Conv2d):
    """2-D convolution (LeCun et al., 1998); `in_size` channels are inferred.

    [B, C, H, W] -> [B, out, H', W'] with H' = (H + 2*pad - dilation*(k-1) - 1) // stride + 1.
    `groups: ${input.channels}` gives a depthwise convolution; `pad: same` keeps H and W.
    """

    def __init__(self, in_size: int, out: int, k: int | list[int] = 1,
                 stride: int | list[int] = 1, pad: int | list[int] | str = 0,
                 dilation: int | list[int] = 1, groups: int = 1, bias: bool = True,
                 pad_mode: str = "zeros"):
        super().__init__(in_size, out, _pair(k), _pair(stride), _pair(pad), _pair(dilation),
                         groups, bias, pad_mode)

    def label(self) -> str:
        """Paper shorthand: `3x3 conv, 128, /2` (`dw` for depthwise)."""
        kh, kw = self.kernel_size
        text = f"{kh}x{kw} conv, {self.out_channels}"
        if self.stride[0] > 1:
            text += f", /{self.stride[0]}"
        if self.groups > 1:
            text += ", dw" if self.groups == self.in_channels else f", {self.groups} groups"
        return text


def _pair(value):
    return tuple(value) if isinstance(value, list) else value
