"""Normalisation layers."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from blocks.registry import register


@register("batchnorm", same_shape=True, in_dim=1,
          example={"args": {}, "inputs": [[2, 4, 5, 5]]})
class BatchNorm(nn.BatchNorm2d):
    """Batch normalisation over channels (Ioffe & Szegedy, 2015).

    [B, C, H, W] -> [B, C, H, W].
    """

    def __init__(self, in_size: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__(in_size, eps, momentum, affine, track_running_stats)

    def label(self) -> str:
        return "batch norm"


@register("batchnorm1d", same_shape=True, in_dim=1,
          example={"args": {}, "inputs": [[3, 4]]})
class BatchNorm1d(nn.BatchNorm1d):
    """Batch normalisation of features (Ioffe & Szegedy, 2015).

    [B, D] -> [B, D], or [B, C, T] -> [B, C, T].
    """

    def __init__(self, in_size: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__(in_size, eps, momentum, affine, track_running_stats)

    def label(self) -> str:
        return "batch norm"


@register("layernorm", same_shape=True, in_dim=-1,
          example={"args": {"eps": 1e-6}, "inputs": [[2, 3, 8]]})
class LayerNorm(nn.LayerNorm):
    """Layer normalisation over the last dimension (Ba et al., 2016).

    [B, ..., D] -> [B, ..., D].
    """

    def __init__(self, in_size: int, eps: float = 1e-5, affine: bool = True, bias: bool = True):
        super().__init__(in_size, eps, elementwise_affine=affine, bias=bias)

    def label(self) -> str:
        return "layer norm"


@register("layernorm2d", same_shape=True, in_dim=1,
          example={"args": {"eps": 1e-6}, "inputs": [[2, 4, 3, 3]]})
class LayerNorm2d(nn.LayerNorm):
    """Channels-first layer normalisation, as in ConvNeXt (Liu et al., 2022).

    [B, C, H, W] -> [B, C, H, W]; each pixel's C values are normalised (biased variance).
    """

    def __init__(self, in_size: int, eps: float = 1e-5, affine: bool = True):
        super().__init__(in_size, eps, elementwise_affine=affine)

    def label(self) -> str:
        return "layer norm (channels)"

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
