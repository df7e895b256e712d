"""The colour maps (blocks/color.py): EDSR's mean shift and the BT.601 luminance."""

from __future__ import annotations

import pytest
import torch

from engine.blocks.registry import lookup


def _block(name, **args):
    return lookup(name).cls(**args)


def test_mean_shift_subtracts_then_adds_back_and_keeps_edsr_layout():
    mean = [0.4488, 0.4371, 0.4040]
    sub = _block("mean_shift", in_size=3, sign=-1)
    add = _block("mean_shift", in_size=3, sign=1)
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(sub(x), x - torch.tensor(mean).view(1, 3, 1, 1))
    torch.testing.assert_close(add(sub(x)), x)
    # EDSR's MeanShift: a 1x1 conv with weight eye / std and bias sign * range * mean / std
    std = [0.5, 1.0, 2.0]
    shift = _block("mean_shift", in_size=3, std=std, range=255.0)
    assert set(shift.state_dict()) == {"weight", "bias"}
    s = torch.tensor(std)
    torch.testing.assert_close(shift.weight, torch.diag(1 / s).view(3, 3, 1, 1))
    torch.testing.assert_close(shift.bias, -255.0 * torch.tensor(mean) / s)
    want = (x - 255.0 * torch.tensor(mean).view(1, 3, 1, 1)) / s.view(1, 3, 1, 1)
    torch.testing.assert_close(shift(x), want)


def test_mean_shift_is_frozen_and_survives_meta_materialisation():
    shift = _block("mean_shift", in_size=3, sign=-1)
    assert all(not p.requires_grad for p in shift.parameters())
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), shift)
    assert len([p for p in net.parameters() if p.requires_grad]) == 2  # only the ordinary conv's
    with torch.device("meta"):
        meta = _block("mean_shift", in_size=3, sign=-1)
    real = meta.to_empty(device="cpu")
    assert all(not p.requires_grad for p in real.parameters())
    real.reset_parameters()
    for key, value in shift.state_dict().items():
        assert torch.equal(real.state_dict()[key], value), key


def test_mean_shift_errors():
    with pytest.raises(ValueError, match="one value per channel"):
        _block("mean_shift", in_size=4)
    with pytest.raises(ValueError, match="sign"):
        _block("mean_shift", in_size=3, sign=0)


def test_luminance_is_bt601_y():
    lum = _block("luminance")
    x = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)
    want = (16 + 65.481 * 0.2 + 128.553 * 0.5 + 24.966 * 0.8) / 255
    torch.testing.assert_close(lum(x), torch.full((1, 1, 1, 1), want))
    with pytest.raises(ValueError, match="3 RGB channels"):
        lum(torch.rand(1, 1, 2, 2))
