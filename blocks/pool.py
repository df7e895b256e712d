"""Pooling. Spatial pools keep channels: [B, C, H, W] -> [B, C, H', W']; the global sum pool
of GAN discriminators drops the positions: [B, C, H, W] -> [B, C]."""

from __future__ import annotations

from torch import Tensor, nn

from engine.blocks.registry import register
from engine.blocks.shape_rules import Rule, pair, pool_size

_EXAMPLE = {"args": {"k": 2, "stride": 2}, "inputs": [[2, 3, 8, 8]]}


def _pair(value):
    return tuple(value) if isinstance(value, list) else value


def _window_rule(args: dict, shapes: list, dilation: int = 1) -> Rule | None:
    """[B, C, H, W] -> [B, C, H', W'] by PyTorch's pooling arithmetic; no MACs."""
    if len(shapes) != 1 or len(shapes[0]) != 4:
        return None
    k = pair(args["k"])
    stride = k if args.get("stride") is None else pair(args["stride"])
    pad = pair(args.get("pad", 0))
    if None in (k, stride, pad) or min(*k, *stride, dilation) < 1 or min(pad) < 0 \
            or pad[0] * 2 > k[0] or pad[1] * 2 > k[1]:
        return None
    b, c, h, w = shapes[0]
    ceil = bool(args.get("ceil", False))
    size = (pool_size(h, k[0], stride[0], pad[0], dilation, ceil),
            pool_size(w, k[1], stride[1], pad[1], dilation, ceil))
    return ([(b, c, *size)], 0) if min(size) > 0 else None


def _adaptive_rule(args: dict, shapes: list) -> Rule | None:
    """[B, C, H, W] -> [B, C, *size]; no MACs."""
    size = pair(args["size"])
    if len(shapes) != 1 or len(shapes[0]) != 4 or size is None or min(size) < 1:
        return None
    return [(*shapes[0][:2], *size)], 0


def _pool_label(kind: str, k, stride) -> str:
    kh, kw = (k, k) if isinstance(k, int) else k
    s = stride if isinstance(stride, int) else stride[0]
    return f"{kh}x{kw} {kind} pool" + (f", /{s}" if s > 1 else "")


@register("maxpool", category="pool", layout=True, example=_EXAMPLE)
class MaxPool(nn.MaxPool2d):
    """Max pooling over k x k windows. [B, C, H, W] -> [B, C, H', W'].

    `stride` defaults to `k`; `ceil: true` rounds H' up, as GoogLeNet and SqueezeNet need.
    """

    def __init__(self, k: int | list[int], stride: int | list[int] | None = None,
                 pad: int | list[int] = 0, dilation: int = 1, ceil: bool = False):
        super().__init__(_pair(k), _pair(stride), _pair(pad), dilation, ceil_mode=ceil)

    @staticmethod
    def shape_rule(args: dict, shapes: list) -> Rule | None:
        dilation = args.get("dilation", 1)
        return _window_rule(args, shapes, dilation) if isinstance(dilation, int) else None

    def label(self) -> str:
        return _pool_label("max", self.kernel_size, self.stride)


@register("avgpool", category="pool", layout=True, example=_EXAMPLE)
class AvgPool(nn.AvgPool2d):
    """Average pooling over k x k windows. [B, C, H, W] -> [B, C, H', W']."""

    def __init__(self, k: int | list[int], stride: int | list[int] | None = None,
                 pad: int | list[int] = 0, ceil: bool = False, count_include_pad: bool = True):
        super().__init__(_pair(k), _pair(stride), _pair(pad), ceil, count_include_pad)

    shape_rule = staticmethod(_window_rule)

    def label(self) -> str:
        return _pool_label("avg", self.kernel_size, self.stride)


@register("adaptive_avgpool", category="pool", layout=True,
          example={"args": {"size": 1}, "inputs": [[2, 3, 7, 7]]})
class AdaptiveAvgPool(nn.AdaptiveAvgPool2d):
    """Average pooling to a fixed output size. [B, C, H, W] -> [B, C, size, size]."""

    def __init__(self, size: int | list[int]):
        super().__init__(_pair(size))

    shape_rule = staticmethod(_adaptive_rule)

    def label(self) -> str:
        size = self.output_size
        return "global avg pool" if size in (1, (1, 1)) else f"adaptive avg pool, {size}"


@register("adaptive_maxpool", category="pool", layout=True,
          example={"args": {"size": [2, 3]}, "inputs": [[2, 3, 7, 7]]})
class AdaptiveMaxPool(nn.AdaptiveMaxPool2d):
    """Max pooling to a fixed output size. [B, C, H, W] -> [B, C, size, size]."""

    def __init__(self, size: int | list[int]):
        super().__init__(_pair(size))

    shape_rule = staticmethod(_adaptive_rule)

    def label(self) -> str:
        size = self.output_size
        return "global max pool" if size in (1, (1, 1)) else f"adaptive max pool, {size}"


@register("global_sum_pool", category="pool", layout=False, example={"args": {}, "inputs": [[2, 4, 3, 5]]})
class GlobalSumPool(nn.Module):
    """Global sum pooling, as the ResNet discriminators of SNGAN and SAGAN (Miyato et al.,
    2018) end: a sum, not a mean, over positions.

    [B, C, H, W] -> [B, C].
    """

    def label(self) -> str:
        return "sum pool"

    def forward(self, x: Tensor) -> Tensor:
        return x.sum(dim=(2, 3))
