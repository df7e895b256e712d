"""Colour conversions of image tensors in [0, 1], channels first ([3, H, W] or [B, 3, H, W]).

YCbCr is ITU-R BT.601 studio swing as MATLAB's `rgb2ycbcr` computes it for double images (the
convention of the super-resolution papers, whose PSNR / SSIM are on its Y channel):

    Y  =  16/255 + ( 65.481 R + 128.553 G +  24.966 B) / 255   in [16/255, 235/255]
    Cb = 128/255 + (-37.797 R -  74.203 G + 112.000 B) / 255   in [16/255, 240/255]
    Cr = 128/255 + (112.000 R -  93.786 G -  18.214 B) / 255

scikit-image's `rgb2ycbcr` gives the same values times 255 for float input.
"""

from __future__ import annotations

import torch
from torch import Tensor

_MATRIX = torch.tensor([[65.481, 128.553, 24.966],
                        [-37.797, -74.203, 112.0],
                        [112.0, -93.786, -18.214]], dtype=torch.float64) / 255
_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64) / 255
_INVERSE = torch.linalg.inv(_MATRIX)


def _apply(x: Tensor, matrix: Tensor) -> Tensor:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"expected an image [3, H, W] or a batch [B, 3, H, W], got shape {tuple(x.shape)}")
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    m = matrix.to(device=x.device, dtype=dtype)
    return torch.einsum("ij,...jhw->...ihw", m, x.to(dtype))


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """RGB in [0, 1] -> BT.601 YCbCr in [0, 1] (Y in [16/255, 235/255]), same shape and dtype."""
    y = _apply(x, _MATRIX)
    return y + _OFFSET.to(device=y.device, dtype=y.dtype)[:, None, None]


def ycbcr_to_rgb(x: Tensor) -> Tensor:
    """BT.601 YCbCr in [0, 1] -> RGB in [0, 1] (not clamped), the inverse of `rgb_to_ycbcr`."""
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    shifted = x.to(dtype) - _OFFSET.to(device=x.device, dtype=dtype)[:, None, None]
    return _apply(shifted, _INVERSE)


def rgb_to_y(x: Tensor) -> Tensor:
    """RGB [..., 3, H, W] in [0, 1] -> BT.601 luma Y [..., 1, H, W] in [16/255, 235/255]."""
    return rgb_to_ycbcr(x)[..., :1, :, :]
