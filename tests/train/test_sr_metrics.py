"""PSNR / SSIM on the BT.601 luma (engine/train/evaluation/sr_metrics.py) against scikit-image, and the colour
conversions of engine/train/evaluation/color.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.train.evaluation.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from engine.train.evaluation.metrics import METRICS
from engine.train.evaluation.sr_metrics import psnr_y, ssim_y
from tests.conftest import SHARED_DATA, skip_without

skimage = pytest.importorskip("skimage", reason="scikit-image is not installed (pip install -e .[dev])")
from skimage.color import rgb2ycbcr  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402

SET5 = SHARED_DATA / "sr_benchmarks" / "Set5"
needs_set5 = skip_without("sr_benchmarks/Set5")


def _reference(output: torch.Tensor, target: torch.Tensor, border: int) -> tuple[list, list]:
    """skimage's PSNR and SSIM of each image's Y (our conversion), cropped by `border`."""
    psnrs, ssims = [], []
    for o, t in zip(output, target):
        yo = rgb_to_y(o.double())[0].numpy() if o.shape[0] == 3 else o[0].double().numpy()
        yt = rgb_to_y(t.double())[0].numpy() if t.shape[0] == 3 else t[0].double().numpy()
        if border:
            yo, yt = yo[border:-border, border:-border], yt[border:-border, border:-border]
        psnrs.append(peak_signal_noise_ratio(yt, yo, data_range=1.0))
        ssims.append(structural_similarity(yt, yo, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False))
    return psnrs, ssims


def _check(output, target, border):
    psnrs, ssims = _reference(output, target, border)
    got_p, got_s = psnr_y(output, target, border), ssim_y(output, target, border)
    assert got_p.shape == got_s.shape == (len(output),)
    np.testing.assert_allclose(got_p.numpy(), psnrs, rtol=0, atol=1e-8)
    np.testing.assert_allclose(got_s.numpy(), ssims, rtol=0, atol=1e-6)


# ---- colour ---------------------------------------------------------------------------------

def test_ycbcr_matches_a_hand_computation():
    rgb = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64).view(3, 1, 1)
    r, g, b = 0.2, 0.5, 0.8
    want = [(16 + 65.481 * r + 128.553 * g + 24.966 * b) / 255,
            (128 - 37.797 * r - 74.203 * g + 112.0 * b) / 255,
            (128 + 112.0 * r - 93.786 * g - 18.214 * b) / 255]
    torch.testing.assert_close(rgb_to_ycbcr(rgb).flatten(), torch.tensor(want, dtype=torch.float64))
    # white and black hit studio swing's ends: Y 235 and 16, chroma 128
    ends = rgb_to_ycbcr(torch.tensor([[1.0, 0.0]] * 3).view(3, 1, 2)) * 255
    torch.testing.assert_close(ends[:, 0, 0], torch.tensor([235.0, 128.0, 128.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(ends[:, 0, 1], torch.tensor([16.0, 128.0, 128.0]), atol=1e-4, rtol=0)


def test_ycbcr_round_trip_and_shapes():
    x = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    y = rgb_to_ycbcr(x)
    assert y.shape == x.shape and y.dtype == torch.float64
    torch.testing.assert_close(ycbcr_to_rgb(y), x, atol=1e-12, rtol=0)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(x[0])), x[0], atol=1e-12, rtol=0)
    assert rgb_to_ycbcr(x.float()).dtype == torch.float32
    assert rgb_to_y(x).shape == (2, 1, 5, 7)
    with pytest.raises(ValueError, match="expected an image"):
        rgb_to_ycbcr(torch.rand(2, 4, 5, 5))


def test_ycbcr_matches_skimage():
    x = torch.rand(3, 9, 11, dtype=torch.float64)
    want = rgb2ycbcr(x.permute(1, 2, 0).numpy()) / 255  # skimage: [16, 235] for float input
    np.testing.assert_allclose(rgb_to_ycbcr(x).permute(1, 2, 0).numpy(), want, rtol=0, atol=1e-12)


def test_luminance_block_equals_the_y_channel():
    from engine.blocks.color import Luminance
    x = torch.rand(2, 3, 6, 4)
    torch.testing.assert_close(Luminance()(x), rgb_to_y(x), atol=1e-6, rtol=0)


# ---- metrics --------------------------------------------------------------------------------

@pytest.mark.parametrize("border", [0, 2, 4])
def test_metrics_match_skimage_on_noisy_random_images(border):
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 3, 40, 48, generator=g)
    output = (target + 0.05 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    _check(output, target, border)


@pytest.mark.parametrize("size", [(11, 11), (23, 17), (31, 45)])
def test_metrics_match_skimage_on_odd_sizes(size):
    g = torch.Generator().manual_seed(1)
    target = torch.rand(2, 3, *size, generator=g)
    output = (target + 0.1 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    _check(output, target, 0)
    # one-channel inputs are taken as Y already
    _check(output[:, :1], target[:, :1], 0)


@needs_set5
def test_metrics_match_skimage_on_set5_bicubic_down_up():
    from engine.train.data import build_dataset
    data = build_dataset("sr_benchmark", SHARED_DATA, "test", 0, None, {"set": "Set5", "scale": 3})
    for lr, hr in data:
        up = torch.nn.functional.interpolate(lr[None], size=hr.shape[-2:], mode="bicubic",
                                             align_corners=False).clamp(0, 1)
        _check(up, hr[None], 3)
        assert 20 < float(psnr_y(up, hr[None], 3)) < 40


def test_identical_images_and_errors():
    x = torch.rand(2, 3, 16, 16)
    assert torch.all(psnr_y(x, x) == 100) and torch.allclose(ssim_y(x, x), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="differ in shape"):
        psnr_y(x, x[..., :8])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_y(x, x, border=3)
    with pytest.raises(ValueError, match="leaves nothing"):
        psnr_y(x, x, border=8)


def test_registered_metrics_use_border_zero():
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(2, 3, 20, 20, generator=g), torch.rand(2, 3, 20, 20, generator=g)
    assert torch.equal(METRICS.get("psnr_y")(a, b), psnr_y(a, b, border=0))
    assert torch.equal(METRICS.get("ssim_y")(a, b), ssim_y(a, b, border=0))


def _grid_share_numpy(y: np.ndarray, scale: int) -> float:
    """The share of |FFT|^2 (mean removed) on the rows and columns at frequencies k / scale."""
    power = np.abs(np.fft.fft2(y - y.mean())) ** 2
    h, w = power.shape
    rows = {round(k * h / scale) % h for k in range(1, scale)}
    cols = {round(k * w / scale) % w for k in range(1, scale)}
    mask = np.zeros_like(power, dtype=bool)
    mask[sorted(rows), :] = True
    mask[:, sorted(cols)] = True
    return float(power[mask].sum() / power.sum())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_checkerboard_is_the_grid_share_over_the_targets_and_sees_a_sub_pixel_pattern(scale):
    from engine.train.evaluation.sr_metrics import checkerboard_y
    torch.manual_seed(scale)
    smooth = torch.nn.functional.interpolate(torch.rand(2, 3, 9, 9), size=(36, 36), mode="bicubic",
                                             align_corners=False).clamp(0, 1)
    grid = torch.zeros(36, 36)
    grid[::scale, ::scale] = 0.2  # one bright pixel per scale x scale cell: a pixel-shuffle pattern
    patterned = (smooth + grid).clamp(0, 1)
    ratio = checkerboard_y(torch.cat([smooth[:1], patterned[1:]]), smooth, scale, border=scale)
    ys = [rgb_to_y(x.double())[0].numpy()[scale:-scale, scale:-scale] for x in (smooth[1], patterned[1])]
    expected = _grid_share_numpy(ys[1], scale) / _grid_share_numpy(ys[0], scale)
    assert ratio[0].item() == pytest.approx(1.0)  # an image against itself
    assert ratio[1].item() == pytest.approx(expected, rel=1e-9) and expected > 5
