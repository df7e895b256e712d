"""The super-resolution specs: output shapes at x2/x3/x4, parameter counts against the papers
(with the hand formula), and equivalence with plain-torch references loaded with the same weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import engine


def _trainable(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def _conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", ["espcn", "edsr"])
def test_lr_input_models_upscale_by_scale(name, scale):
    m = engine.build(name, scale=scale, size=8)
    assert m(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8 * scale, 8 * scale)


@pytest.mark.parametrize("name", ["srcnn", "vdsr", "drrn", "drcn"])
def test_upscaled_input_models_keep_the_size(name):
    m = engine.build(name, size=12, features=8) if name in ("drrn", "drcn") else engine.build(name, size=12)
    out = m(torch.rand(1, 3, 12, 12))
    out = out["out"] if isinstance(out, dict) else out
    assert out.shape == (1, 3, 12, 12)


def test_srgan_generator_is_x4_and_discriminator_gives_one_logit():
    m = engine.build("srgan")
    assert m["generator"](torch.rand(1, 3, 24, 24)).shape == (1, 3, 96, 96)
    assert m["discriminator"](torch.rand(2, 3, 96, 96)).shape == (2, 1)


@pytest.mark.parametrize("name, params, want, paper", [
    ("srcnn", {"channels": 1}, _conv(1, 64, 9) + _conv(64, 32, 1) + _conv(32, 1, 5), 8_000),
    ("espcn", {"channels": 1, "scale": 3}, _conv(1, 64, 5) + _conv(64, 32, 3) + _conv(32, 9, 3), None),
    ("vdsr", {"channels": 1}, _conv(1, 64, 3) + 18 * _conv(64, 64, 3) + _conv(64, 1, 3), 665_000),
    # the recursions count once: one residual unit (two convs) for all 25 applications
    ("drrn", {"channels": 1}, _conv(1, 128, 3) + 2 * _conv(128, 128, 3) + _conv(128, 1, 3), 297_000),
    # embedding 2 convs, ONE inference conv for 16 recursions, reconstruction 2 convs, 16 weights
    ("drcn", {"channels": 1}, _conv(1, 256, 3) + 3 * _conv(256, 256, 3) + _conv(256, 1, 3) + 16,
     1_775_000),
    ("edsr", {"scale": 2}, _conv(3, 64, 3) + 33 * _conv(64, 64, 3) + _conv(64, 256, 3) + _conv(64, 3, 3),
     1_370_000),
])
def test_parameter_counts(name, params, want, paper):
    got = _trainable(engine.build(name, **params))
    assert got == want
    if paper:
        assert abs(got - paper) / paper < 0.02


def test_drcn_and_drrn_share_one_tensor_across_recursions():
    m = engine.build("drrn", size=8, features=8, units=5)
    weight = getattr(m.recursion, "0").conv1.weight
    out = m(torch.rand(1, 3, 8, 8))
    grads = torch.autograd.grad(out.sum(), weight)
    assert grads[0].abs().sum() > 0
    assert list(m.recursion.named_children()) == [("0", getattr(m.recursion, "0"))]
    d = engine.build("drcn", size=8, features=8, depth=4)
    assert d(torch.rand(1, 3, 8, 8))["steps"].shape == (1, 4, 3, 8, 8)
    assert list(dict(d.inference.named_children())) == ["0"]


def test_vdsr_equals_a_plain_torch_reference():
    m = engine.build("vdsr", size=10)
    layers = [nn.Conv2d(3, 64, 3, padding=1), nn.ReLU()]
    for _ in range(18):
        layers += [nn.Conv2d(64, 64, 3, padding=1), nn.ReLU()]
    ref = nn.Sequential(*layers, nn.Conv2d(64, 3, 3, padding=1))
    ref.load_state_dict({k.removeprefix("body."): v for k, v in m.state_dict().items()})
    x = torch.rand(2, 3, 10, 10)
    torch.testing.assert_close(m(x), ref(x) + x)


def test_espcn_equals_a_plain_torch_reference():
    m = engine.build("espcn", scale=3, size=6)
    x = torch.rand(2, 3, 6, 6)
    h = torch.tanh(F.conv2d(x, m.conv1.weight, m.conv1.bias, padding=2))
    h = torch.tanh(F.conv2d(h, m.conv2.weight, m.conv2.bias, padding=1))
    want = F.pixel_shuffle(F.conv2d(h, m.conv3.weight, m.conv3.bias, padding=1), 3)
    torch.testing.assert_close(m(x), want)


@pytest.mark.parametrize("name, res_scale", [("edsr", 1.0), ("edsr_large", 0.1)])
def test_edsr_residual_block_equals_a_plain_torch_reference(name, res_scale):
    m = engine.build(name, size=6, features=16, blocks=2)
    block = getattr(m.body, "0")
    x = torch.rand(2, 16, 6, 6)
    h = F.conv2d(F.relu(F.conv2d(x, block.conv1.weight, block.conv1.bias, padding=1)),
                 block.conv2.weight, block.conv2.bias, padding=1)
    torch.testing.assert_close(block(x), h * res_scale + x)
