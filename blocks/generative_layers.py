"""Layers of the generative models: transposed and masked convolutions, group norm,
spatial self-attention and FiLM conditioning."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blocks.registry import register


@register("conv_transpose", in_dim=1, layout=True,
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


@register("group_norm", in_dim=1, same_shape=True,
          example={"args": {"groups": 4}, "inputs": [[2, 8, 3, 3]]})
class GroupNorm(nn.GroupNorm):
    """Group normalisation over channel groups (Wu & He, 2018); `groups` must divide C.

    [B, C, H, W] -> [B, C, H, W] (also [B, C, *] -> [B, C, *]).
    """

    def __init__(self, in_size: int, groups: int = 32, eps: float = 1e-5, affine: bool = True):
        super().__init__(groups, in_size, eps, affine)

    def label(self) -> str:
        return f"group norm, {self.num_groups} groups"


@register("masked_conv", in_dim=1, layout=True,
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


@register("self_attention2d", in_dim=1, layout=True,
          example={"args": {"heads": 2}, "inputs": [[2, 8, 4, 5]]})
class SelfAttention2d(nn.Module):
    """Self-attention over the H*W positions of a feature map, as in DDPM's U-Net (Ho et al., 2020).

    [B, C, H, W] -> [B, C, H, W]: x + proj(attention(qkv(norm(x)))), with `norm` a group norm
    (the largest group count <= `groups` dividing C), `qkv` a 1x1 conv to 3C channels split
    into `heads` heads of C/heads channels (scaled by 1/sqrt(C/heads)), `proj` a 1x1 conv.
    """

    def __init__(self, in_size: int, heads: int = 1, groups: int = 32):
        super().__init__()
        if in_size % heads:
            raise ValueError(f"self_attention2d: heads ({heads}) must divide channels ({in_size})")
        self.heads = heads
        groups = max(g for g in range(1, min(groups, in_size) + 1) if in_size % g == 0)
        self.norm = nn.GroupNorm(groups, in_size)
        self.qkv = nn.Conv2d(in_size, 3 * in_size, 1)
        self.proj = nn.Conv2d(in_size, in_size, 1)

    def label(self) -> str:
        return f"self-attention, {self.heads} head{'s' if self.heads > 1 else ''}"

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each [B, heads, H*W, C/heads]
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


@register("film", in_dim=1, inputs=2,
          example={"args": {"cond": 6}, "inputs": [[2, 4, 5, 5], [2, 6]]})
class FiLM(nn.Module):
    """Feature-wise linear modulation (Perez et al., 2018) of a feature map by a condition.

    [B, C, H, W] (x), [B, D] (cond) -> [B, C, H, W]: a linear layer maps the condition to
    (scale, shift), each [B, C], and out = x * (1 + scale) + shift per channel. C is inferred;
    the condition width D is the required `cond` argument, written in the spec
    (e.g. `cond: ${4 * width}`).
    """

    def __init__(self, in_size: int, cond: int):
        super().__init__()
        self.linear = nn.Linear(cond, 2 * in_size)

    def label(self) -> str:
        return "FiLM"

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.linear(cond).chunk(2, dim=-1)
        return x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


def _pair(value):
    return tuple(value) if isinstance(value, list) else value
