"""The GAN layers (blocks/gan_layers.py) and `elu` against oracles: torch.nn.functional
equivalents or hand computations of the papers' formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from blocks.registry import lookup


def _block(name, **args):
    return lookup(name).cls(**args)


def test_instance_norm_matches_functional():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 6)
    norm = _block("instance_norm", in_size=4)
    assert list(norm.state_dict()) == []
    for mode in (norm.train(), norm.eval()):  # batch statistics in both modes
        torch.testing.assert_close(mode(x), F.instance_norm(x, eps=1e-5))


def test_instance_norm_affine_parameters():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4)
    norm = _block("instance_norm", in_size=3, eps=1e-3, affine=True)
    assert sorted(n for n, _ in norm.named_parameters()) == ["bias", "weight"]
    assert not norm.track_running_stats
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, -1.0]))
        norm.bias.copy_(torch.tensor([0.0, 0.5, 3.0]))
    want = F.instance_norm(x, weight=norm.weight, bias=norm.bias, eps=1e-3)
    torch.testing.assert_close(norm(x), want)
    assert norm.label() == "instance norm"


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_elu_matches_formula(alpha):
    x = torch.linspace(-4, 4, 41)
    want = torch.where(x > 0, x, alpha * (torch.exp(x) - 1))
    torch.testing.assert_close(_block("elu", alpha=alpha)(x), want)
    torch.testing.assert_close(_block("elu", alpha=alpha)(x), F.elu(x, alpha))


def test_conditional_batchnorm_matches_hand_computation():
    torch.manual_seed(0)
    x, label = torch.randn(6, 3, 4, 4), torch.tensor([0, 1, 2, 1, 0, 2])
    block = _block("conditional_batchnorm", in_size=3, classes=3, eps=1e-3)
    torch.testing.assert_close(block.embed.weight[:, :3], torch.ones(3, 3))
    torch.testing.assert_close(block.embed.weight[:, 3:], torch.zeros(3, 3))
    with torch.no_grad():
        block.embed.weight.normal_()
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    normed = (x - mean) / torch.sqrt(var + 1e-3)
    gamma, beta = block.embed.weight[label, :3], block.embed.weight[label, 3:]
    want = gamma[:, :, None, None] * normed + beta[:, :, None, None]
    torch.testing.assert_close(block(x, label), want)
    assert block.label() == "cond. batch norm, 3 classes"


def test_conditional_batchnorm_starts_as_batchnorm_and_labels_differ_once_trained():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 2, 2)
    block = _block("conditional_batchnorm", in_size=3, classes=2)
    same = torch.zeros(4, dtype=torch.long)
    torch.testing.assert_close(block(x, same), F.batch_norm(x, None, None, training=True))
    torch.testing.assert_close(block(x, same), block(x, torch.ones(4, dtype=torch.long)))
    with torch.no_grad():
        block.embed.weight.add_(0.1 * torch.randn_like(block.embed.weight))
    assert not torch.allclose(block(x, same), block(x, torch.ones(4, dtype=torch.long)))


def test_conditional_batchnorm_reset_restores_identity_affine():
    block = _block("conditional_batchnorm", in_size=2, classes=4)
    with torch.no_grad():
        block.embed.weight.normal_()
    block.embed.reset_parameters()  # the engine's order: children, then the block
    block.reset_parameters()
    torch.testing.assert_close(block.embed.weight, torch.tensor([[1.0, 1, 0, 0]] * 4))


@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 3, 3)])
def test_pixel_norm_matches_formula(shape):
    torch.manual_seed(0)
    x = torch.randn(shape)
    out = _block("pixel_norm")(x)
    want = x / torch.sqrt((x ** 2).mean(dim=1, keepdim=True) + 1e-8)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close((out ** 2).mean(dim=1), torch.ones(out.shape[:1] + out.shape[2:]))


def _sagan_reference(block, x):
    # The SAGAN reference implementation's bmm formulation (Zhang et al., 2019).
    b, c, h, w = x.shape
    n = h * w
    proj_query = block.query(x).view(b, -1, n).permute(0, 2, 1)
    proj_key = block.key(x).view(b, -1, n)
    attention = torch.softmax(torch.bmm(proj_query, proj_key), dim=-1)
    proj_value = block.value(x).view(b, -1, n)
    out = torch.bmm(proj_value, attention.permute(0, 2, 1)).view(b, c, h, w)
    return block.gamma * out + x


@pytest.mark.parametrize("spectral", [False, True])
def test_sagan_attention_identity_at_init_and_matches_reference(spectral):
    torch.manual_seed(0)
    x = torch.randn(2, 16, 3, 5)
    block = _block("sagan_attention", in_size=16, spectral_norm=spectral).eval()
    assert block.query.out_channels == 2 and block.value.out_channels == 16
    assert torch.equal(block(x), x)
    with torch.no_grad():
        block.gamma.fill_(1.0)
    torch.testing.assert_close(block(x), _sagan_reference(block, x))
    assert not torch.allclose(block(x), x)
    assert block.label() == "self-attention (SAGAN)"


def test_sagan_attention_small_channels_and_gradient_to_gamma():
    torch.manual_seed(0)
    block = _block("sagan_attention", in_size=4)  # 4 // 8 = 0 -> at least 1 channel
    assert block.query.out_channels == 1
    block(torch.randn(2, 4, 3, 3)).square().sum().backward()
    assert block.gamma.grad is not None and block.gamma.grad.abs().item() > 0


def test_sagan_attention_spectral_norm_and_reset():
    torch.manual_seed(0)
    block = _block("sagan_attention", in_size=8, reduction=2, spectral_norm=True)
    original = block.query.parametrizations.weight.original
    assert {"query.parametrizations.weight.original", "gamma"} <= {
        n for n, _ in block.named_parameters()}
    for _ in range(20):  # training-mode calls run the power iteration
        block(torch.randn(1, 8, 2, 2))
    sigma = torch.linalg.matrix_norm(block.query.weight.flatten(1), ord=2)
    torch.testing.assert_close(sigma, torch.tensor(1.0), atol=1e-3, rtol=0)
    with torch.no_grad():
        original.fill_(float("nan"))
        block.gamma.fill_(3.0)
    block.reset_parameters()
    assert torch.isfinite(original).all() and block.gamma.item() == 0
    assert torch.isfinite(block.query.parametrizations.weight[0]._u).all()


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


def test_global_sum_pool():
    x = torch.randn(2, 4, 3, 5)
    block = _block("global_sum_pool")
    torch.testing.assert_close(block(x), x.sum((2, 3)))
    assert block.label() == "sum pool"


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
