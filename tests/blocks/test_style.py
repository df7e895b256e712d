"""The style and conditioning blocks (blocks/style.py) against oracles: torch.nn.functional
equivalents and hand computations of the papers' formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.blocks.registry import lookup
from engine.blocks.style import FiLM


def _block(name, **args):
    return lookup(name).cls(**args)


def test_equal_linear_matches_functional_and_scales():
    torch.manual_seed(0)
    block = _block("equal_linear", in_size=256, out=512, bias_init=0.5)
    x = torch.randn(3, 256)
    scale = 2 ** 0.5 / math.sqrt(256)
    torch.testing.assert_close(block(x), F.linear(x, block.weight * scale, block.bias))
    assert abs(block.weight.std().item() - 1.0) < 0.02
    assert abs((block.weight * block.scale).std().item() - scale) < 0.02 * scale
    torch.testing.assert_close(block.bias, torch.full((512,), 0.5))
    assert block.label() == "equalised linear, 512"


def test_equal_linear_lr_mul_and_no_bias():
    torch.manual_seed(0)
    block = _block("equal_linear", in_size=64, out=32, lr_mul=0.01, gain=1.0, bias_init=1.0)
    assert abs(block.weight.std().item() - 100.0) < 5.0  # N(0, 1) / lr_mul
    x = torch.randn(4, 64)
    want = F.linear(x, block.weight * (0.01 / 8), block.bias * 0.01)
    torch.testing.assert_close(block(x), want)
    plain = _block("equal_linear", in_size=64, out=32, bias=False)
    assert plain.bias is None and [n for n, _ in plain.named_parameters()] == ["weight"]
    torch.testing.assert_close(plain(x), x @ (plain.weight * 2 ** 0.5 / 8).T)


@pytest.mark.parametrize("stride, pad", [(1, 1), (2, 0)])
def test_equal_conv_matches_functional(stride, pad):
    torch.manual_seed(0)
    block = _block("equal_conv", in_size=4, out=6, k=3, stride=stride, pad=pad)
    x = torch.randn(2, 4, 7, 7)
    scale = 2 ** 0.5 / math.sqrt(4 * 9)
    want = F.conv2d(x, block.weight * scale, block.bias, stride, pad)
    torch.testing.assert_close(block(x), want)
    assert torch.equal(block.bias, torch.zeros(6))
    assert block.label() == "3x3 equalised conv, 6"


def test_equal_conv_init_statistics():
    torch.manual_seed(0)
    block = _block("equal_conv", in_size=32, out=64, k=3, bias=False)
    assert block.bias is None
    assert abs(block.weight.std().item() - 1.0) < 0.03


def test_noise_injection_identity_at_init_and_rank_one_noise():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 5, 5)
    block = _block("noise_injection", in_size=4)
    assert block.weight.shape == (1, 4, 1, 1)
    assert torch.equal(block(x), x)
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0])
    with torch.no_grad():
        block.weight.copy_(weights.view(1, 4, 1, 1))
    added = block(x) - x  # [B, C, H, W]: weight[c] * noise[b, h, w]
    noise = added[:, :1] / weights[0]
    torch.testing.assert_close(added, weights.view(1, 4, 1, 1) * noise, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(noise[0], noise[1])  # one map per image
    assert abs(noise.std().item() - 1.0) < 0.5


def test_adain_matches_hand_computation():
    torch.manual_seed(0)
    x, w = torch.randn(2, 3, 4, 4), torch.randn(2, 5)
    block = _block("adain", in_size=3, style=5)
    assert torch.equal(block.style.bias, torch.zeros(6))
    with torch.no_grad():
        block.style.bias.normal_()
    style = w @ (block.style.weight / math.sqrt(5)).T + block.style.bias
    scale, shift = style[:, :3, None, None], style[:, 3:, None, None]
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    want = (x - mean) / torch.sqrt(var + 1e-5) * (1 + scale) + shift
    torch.testing.assert_close(block(x, w), want)
    assert block.label() == "AdaIN"


def test_constant_input_ignores_input_values():
    torch.manual_seed(0)
    block = _block("constant_input", channels=8, size=4)
    a, b = block(torch.randn(3, 6)), block(torch.randn(3, 6))
    assert a.shape == (3, 8, 4, 4) and torch.equal(a, b)
    assert torch.equal(a[2], block.const[0])
    a.sum().backward()
    torch.testing.assert_close(block.const.grad, torch.full((1, 8, 4, 4), 3.0))
    assert block.label() == "const 8x4x4"


def test_projection_matches_hand_computation():
    torch.manual_seed(0)
    block = _block("projection", in_size=4, classes=3)
    assert [n for n, _ in block.named_parameters()] == ["weight"]
    features, label = torch.randn(5, 4), torch.tensor([2, 0, 1, 1, 2])
    want = torch.stack([block.weight[y] @ f for f, y in zip(features, label)])[:, None]
    torch.testing.assert_close(block(features, label), want)
    assert block.label() == "projection, 3 classes"


def test_projection_under_spectral_norm():
    torch.manual_seed(0)
    block = torch.nn.utils.parametrizations.spectral_norm(_block("projection", in_size=4,
                                                                 classes=3))
    features, label = torch.randn(2, 4), torch.tensor([0, 2])
    out = block(features, label)
    want = (block.weight[label] * features).sum(dim=1, keepdim=True)
    torch.testing.assert_close(out, want)


def test_minibatch_stddev_whole_batch_group():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 2, 2)
    out = _block("minibatch_stddev", group=4)(x)
    assert out.shape == (4, 4, 2, 2) and torch.equal(out[:, :3], x)
    mean = x.mean(dim=0)
    std = torch.sqrt(((x - mean) ** 2).mean(dim=0) + 1e-8)
    torch.testing.assert_close(out[:, 3], std.mean().expand(4, 2, 2))


def test_minibatch_stddev_groups_and_errors():
    torch.manual_seed(0)
    x = torch.randn(6, 2, 3, 3)
    out = _block("minibatch_stddev", group=2)(x)  # groups {0, 3}, {1, 4}, {2, 5}
    for i in range(6):
        pair = x[[i % 3, i % 3 + 3]]
        want = torch.sqrt(pair.var(dim=0, unbiased=False) + 1e-8).mean()
        torch.testing.assert_close(out[i, 2], want.expand(3, 3))
    small = _block("minibatch_stddev")(torch.randn(2, 2, 3, 3))  # group = min(4, 2)
    assert small.shape == (2, 3, 3, 3)
    with pytest.raises(ValueError, match="not divisible by the group size 4"):
        _block("minibatch_stddev", group=4)(torch.randn(6, 2, 3, 3))
    assert _block("minibatch_stddev").label() == "minibatch stddev"


@pytest.mark.parametrize("name, args, shapes, want", [
    ("conditional_batchnorm", {"in_size": 4, "classes": 3}, [(2, 4, 3, 3), (2,)], (2, 4, 3, 3)),
    ("projection", {"in_size": 4, "classes": 3}, [(2, 4), (2,)], (2, 1)),
])
def test_label_blocks_run_on_meta_with_long_labels(name, args, shapes, want):
    with torch.device("meta"):
        block = _block(name, **args)
        x = torch.empty(shapes[0])
        label = torch.empty(shapes[1], dtype=torch.long)
        assert block(x, label).shape == want


def test_film_matches_formula():
    block = FiLM(in_size=4, cond=6)
    x, c = torch.randn(2, 4, 3, 3), torch.randn(2, 6)
    ss = c @ block.linear.weight.T + block.linear.bias
    scale, shift = ss[:, :4], ss[:, 4:]
    want = x * (1 + scale.view(2, 4, 1, 1)) + shift.view(2, 4, 1, 1)
    torch.testing.assert_close(block(x, c), want)
    assert block.label() == "FiLM"


def test_truncation_broadcasts_tracks_the_average_and_truncates_in_eval():
    from engine.blocks.style import Truncation
    block = Truncation(4, layers=3, psi=0.5, cutoff=2, beta=0.9)
    w1, w2 = torch.randn(5, 4), torch.randn(5, 4)
    out = block(w1)
    assert out.shape == (5, 3, 4) and all(torch.equal(out[:, i], w1) for i in range(3))
    block(w2)
    torch.testing.assert_close(block.w_avg, 0.9 * 0.1 * w1.mean(0) + 0.1 * w2.mean(0))
    avg = block.w_avg.clone()
    block.eval()
    out = block(w1)
    torch.testing.assert_close(out[:, :2], (avg + 0.5 * (w1 - avg))[:, None].expand(5, 2, 4))
    torch.testing.assert_close(out[:, 2], w1)  # past the cutoff: untruncated
    torch.testing.assert_close(block.w_avg, avg)  # eval does not move the average
    block.psi = 1.0
    torch.testing.assert_close(block(w1), w1[:, None].expand(5, 3, 4))


def test_style_mixing_takes_another_samples_styles_from_a_crossover_on():
    from engine.blocks.style import StyleMixing
    torch.manual_seed(0)
    styles = torch.randn(4, 6, 3)
    block = StyleMixing(prob=1.0)
    crossovers = set()
    for _ in range(40):
        out = block(styles)
        own = (out == styles).all(dim=2).all(dim=0)  # per layer: every sample kept its own
        c = int(own.logical_not().nonzero()[0])
        assert own[:c].all() and not own[c:].any() and 1 <= c <= 5
        torch.testing.assert_close(out[:, c:], styles.roll(1, 0)[:, c:])
        crossovers.add(c)
    assert crossovers == {1, 2, 3, 4, 5}  # uniform over 1..L-1: all of them show up
    assert torch.equal(StyleMixing(prob=0.0)(styles), styles)
    block.eval()
    assert torch.equal(block(styles), styles)
    with pytest.raises(ValueError, match="prob must be in"):
        StyleMixing(prob=1.5)
