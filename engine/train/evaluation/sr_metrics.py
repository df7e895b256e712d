"""Super-resolution metrics as the papers report them: PSNR and SSIM on the BT.601 luma (Y),
with `border` pixels cropped from each side (customarily the scale factor, since the borders
of an upscaled image are guesses).

Both take images in [0, 1], RGB [B, 3, H, W] (converted to Y, `engine.train.evaluation.color.rgb_to_ycbcr`) or
already one channel [B, 1, H, W], and give one value per image [B] in float64. Outputs are not
clamped or quantised here: clamp to [0, 1] (and round to 1/255 to match uint8 evaluations)
before calling, if wanted.

`psnr_y` and `ssim_y` are also registered as metrics (`eval: {metrics: [psnr_y, ssim_y]}`);
the registry calls them as (output, target), so there the border is 0. A procedure that knows
the scale calls `psnr_y(output, target, border=scale)` directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.train.evaluation.color import rgb_to_y

SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # scipy's gaussian_filter with truncate 3.5, as skimage: 5
K1, K2 = 0.01, 0.03


def luma(x: Tensor, border: int = 0) -> Tensor:
    """Images [B, 3 or 1, H, W] in [0, 1] -> their Y [B, 1, H', W'] in float64, `border` cropped."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images [B, 3, H, W] (RGB) or [B, 1, H, W] (Y), got {tuple(x.shape)}")
    x = x.to(torch.float64)
    y = rgb_to_y(x) if x.shape[1] == 3 else x
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border:
        if min(y.shape[-2:]) <= 2 * border:
            raise ValueError(f"border {border} leaves nothing of a {y.shape[-2]}x{y.shape[-1]} image")
        y = y[..., border:-border, border:-border]
    return y


def _pair(output: Tensor, target: Tensor, border: int) -> tuple[Tensor, Tensor]:
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in shape")
    return luma(output, border), luma(target, border)


def psnr_y(output: Tensor, target: Tensor, border: int = 0) -> Tensor:
    """PSNR in dB on Y (data range 1), per image [B]: 10 log10(1 / MSE) over the cropped image
    (skimage's `peak_signal_noise_ratio(..., data_range=1)`), capped at 100 dB (MSE floored at
    1e-10, as `psnr`) so that an identical pair does not make a run's average infinite."""
    a, b = _pair(output, target, border)
    mse = (a - b).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _gaussian(device) -> Tensor:
    x = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=torch.float64, device=device)
    w = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return w / w.sum()


def _filter(x: Tensor, g: Tensor) -> Tensor:
    # separable Gaussian, 'valid': exactly the positions skimage keeps after cropping its
    # window radius, where its reflected padding is never read
    x = F.conv2d(x, g.view(1, 1, -1, 1))
    return F.conv2d(x, g.view(1, 1, 1, -1))


def ssim_y(output: Tensor, target: Tensor, border: int = 0) -> Tensor:
    """SSIM (Wang et al., 2004) on Y, per image [B]: 11x11 Gaussian window of sigma 1.5, K1 0.01,
    K2 0.03, data range 1, population covariances, averaged over the positions at least the
    window radius (5) from the cropped image's edge. Equals skimage's
    `structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)` on the cropped Y."""
    a, b = _pair(output, target, border)
    side = 2 * SSIM_RADIUS + 1
    if min(a.shape[-2:]) < side:
        raise ValueError(f"ssim_y needs images of at least {side}x{side} after the border crop, "
                         f"got {a.shape[-2]}x{a.shape[-1]}")
    g = _gaussian(a.device)
    ux, uy = _filter(a, g), _filter(b, g)
    vx = _filter(a * a, g) - ux * ux
    vy = _filter(b * b, g) - uy * uy
    vxy = _filter(a * b, g) - ux * uy
    c1, c2 = K1 ** 2, K2 ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(dim=1)


def checkerboard_y(output: Tensor, target: Tensor, scale: int, border: int = 0) -> Tensor:
    """Checkerboard artefacts, per image [B]: the share of the Y spectrum's power at the periods of
    an x`scale` pixel grid (frequencies k / scale, k = 1 .. scale - 1, along either axis: where
    sub-pixel and transposed convolutions leave their pattern), over the same share in the
    target. 1: as periodic as the real image; an upscaler that leaves a grid pattern scores many
    times more (SRGAN's crosshatch probe in docs/dense.md: 11 on Set5)."""
    a, b = _pair(output, target, border)
    return _grid_share(a, scale) / _grid_share(b, scale).clamp_min(1e-20)


def _grid_share(y: Tensor, scale: int) -> Tensor:
    power = torch.fft.fft2(y - y.mean(dim=(-2, -1), keepdim=True)).abs().pow(2).sum(1)  # [B, H, W]
    h, w = power.shape[-2:]
    rows = sorted({round(k * h / scale) % h for k in range(1, scale)})
    cols = sorted({round(k * w / scale) % w for k in range(1, scale)})
    grid = power[:, rows, :].sum((1, 2)) + power[:, :, cols].sum((1, 2)) \
        - power[:, rows][:, :, cols].sum((1, 2))  # the crossings are in both
    return grid / power.sum((1, 2)).clamp_min(1e-20)


__all__ = ["checkerboard_y", "luma", "psnr_y", "ssim_y"]
