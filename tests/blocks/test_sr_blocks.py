"""The super-resolution blocks (blocks/sr_layers.py): pixel_shuffle, scale, mean_shift, luminance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from blocks.registry import lookup


def block(name, **args):
    return lookup(name).cls(**args)


def test_pixel_shuffle_equals_torch_and_a_hand_rearrangement():
    ps = block("pixel_shuffle", scale=2)
    x = torch.randn(2, 12, 3, 5)
    torch.testing.assert_close(ps(x), F.pixel_shuffle(x, 2))
    assert ps(x).shape == (2, 3, 6, 10)
    # one output channel, r = 2: input channel i*2 + j fills the output pixels (2h + i, 2w + j)
    x = torch.arange(8.0).view(1, 4, 1, 2)  # channel k holds (2k, 2k + 1) at w = 0, 1
    want = torch.tensor([[0.0, 2.0, 1.0, 3.0],
                         [4.0, 6.0, 5.0, 7.0]]).view(1, 1, 2, 4)
    assert torch.equal(ps(x), want)
    with pytest.raises(ValueError, match="divisible"):
        ps(torch.randn(1, 6, 2, 2))


def test_scale_multiplies():
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(block("scale", factor=0.1)(x), 0.1 * x)
    assert not list(block("scale", factor=0.1).parameters())


def test_mean_shift_subtracts_then_adds_back_and_keeps_edsr_layout():
    mean = [0.4488, 0.4371, 0.4040]
    sub = block("mean_shift", in_size=3, sign=-1)
    add = block("mean_shift", in_size=3, sign=1)
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(sub(x), x - torch.tensor(mean).view(1, 3, 1, 1))
    torch.testing.assert_close(add(sub(x)), x)
    # EDSR's MeanShift: a 1x1 conv with weight eye / std and bias sign * range * mean / std
    std = [0.5, 1.0, 2.0]
    shift = block("mean_shift", in_size=3, std=std, range=255.0)
    assert set(shift.state_dict()) == {"weight", "bias"}
    s = torch.tensor(std)
    torch.testing.assert_close(shift.weight, torch.diag(1 / s).view(3, 3, 1, 1))
    torch.testing.assert_close(shift.bias, -255.0 * torch.tensor(mean) / s)
    want = (x - 255.0 * torch.tensor(mean).view(1, 3, 1, 1)) / s.view(1, 3, 1, 1)
    torch.testing.assert_close(shift(x), want)


def test_mean_shift_is_frozen_and_survives_meta_materialisation():
    shift = block("mean_shift", in_size=3, sign=-1)
    assert all(not p.requires_grad for p in shift.parameters())
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), shift)
    assert len([p for p in net.parameters() if p.requires_grad]) == 2  # only the ordinary conv's
    with torch.device("meta"):
        meta = block("mean_shift", in_size=3, sign=-1)
    real = meta.to_empty(device="cpu")
    assert all(not p.requires_grad for p in real.parameters())
    real.reset_parameters()
    for key, value in shift.state_dict().items():
        assert torch.equal(real.state_dict()[key], value), key


def test_mean_shift_errors():
    with pytest.raises(ValueError, match="one value per channel"):
        block("mean_shift", in_size=4)
    with pytest.raises(ValueError, match="sign"):
        block("mean_shift", in_size=3, sign=0)


def test_luminance_is_bt601_y():
    lum = block("luminance")
    x = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)
    want = (16 + 65.481 * 0.2 + 128.553 * 0.5 + 24.966 * 0.8) / 255
    torch.testing.assert_close(lum(x), torch.full((1, 1, 1, 1), want))
    with pytest.raises(ValueError, match="3 RGB channels"):
        lum(torch.rand(1, 1, 2, 2))
