"""The generative-model layers against independent oracles."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from blocks.generative_layers import ConvTranspose, FiLM, GroupNorm, MaskedConv, SelfAttention2d


@pytest.mark.parametrize("k,stride,pad,output_pad,dilation,groups", [
    (4, 2, 1, 0, 1, 1), (3, 2, 1, 1, 1, 1), (3, 1, 0, 0, 2, 2), ([3, 5], [2, 1], [1, 2], 0, 1, 1)])
def test_conv_transpose_matches_torch_and_shape_formula(k, stride, pad, output_pad, dilation, groups):
    block = ConvTranspose(in_size=4, out=6, k=k, stride=stride, pad=pad, output_pad=output_pad,
                          dilation=dilation, groups=groups)
    pair = lambda v: tuple(v) if isinstance(v, list) else (v, v)  # noqa: E731
    ref = torch.nn.ConvTranspose2d(4, 6, pair(k), pair(stride), pair(pad), pair(output_pad),
                                   groups, True, pair(dilation))
    ref.load_state_dict(block.state_dict())
    x = torch.randn(2, 4, 5, 7)
    out = block(x)
    torch.testing.assert_close(out, ref(x))
    want = [(n - 1) * s - 2 * p + d * (kk - 1) + op + 1
            for n, s, p, d, kk, op in zip((5, 7), pair(stride), pair(pad), pair(dilation), pair(k),
                                          pair(output_pad))]
    assert list(out.shape) == [2, 6, *want]


def test_conv_transpose_label():
    assert ConvTranspose(in_size=4, out=64, k=4, stride=2, pad=1).label() == "4x4 conv transpose, 64, x2"


def test_group_norm_matches_functional():
    block = GroupNorm(in_size=8, groups=4, eps=1e-6)
    with torch.no_grad():
        block.weight.normal_()
        block.bias.normal_()
    x = torch.randn(3, 8, 5, 5)
    torch.testing.assert_close(block(x), F.group_norm(x, 4, block.weight, block.bias, 1e-6))
    assert block.label() == "group norm, 4 groups"


def _grad_of_pixel(block, x, i, j):
    x = x.clone().requires_grad_(True)
    block(x)[0, :, i, j].sum().backward()
    return x.grad[0].abs().sum(0)  # [H, W]: how much each input pixel feeds output (i, j)


@pytest.mark.parametrize("mask", ["A", "B"])
def test_masked_conv_is_causal_in_raster_order(mask):
    torch.manual_seed(0)
    block = MaskedConv(in_size=3, out=4, k=5, mask=mask)
    h = w = 7
    x = torch.randn(1, 3, h, w)
    i, j = 3, 4
    grad = _grad_of_pixel(block, x, i, j)
    order = torch.arange(h * w).view(h, w)
    later = order > i * w + j
    assert (grad[later] == 0).all()
    if mask == "A":
        assert grad[i, j] == 0
    else:
        assert grad[i, j] > 0
    earlier_in_reach = (order < i * w + j) & (abs(torch.arange(h)[:, None] - i) <= 2) \
        & (abs(torch.arange(w)[None, :] - j) <= 2)
    assert (grad[earlier_in_reach] > 0).all()  # and it does see the causal neighbourhood
    # the same, directly: changing the excluded pixels does not change the output pixel
    y = x.clone()
    y[0, :][:, later] += torch.randn(3, int(later.sum()))
    if mask == "A":
        y[0, :, i, j] += 1.0
    with torch.no_grad():
        torch.testing.assert_close(block(y)[0, :, i, j], block(x)[0, :, i, j])


def test_masked_conv_shape_label_and_meta_mask():
    block = MaskedConv(in_size=3, out=8, k=7, mask="A")
    assert block(torch.randn(2, 3, 9, 9)).shape == (2, 8, 9, 9)
    assert block.label() == "7x7 masked conv A, 8"
    assert set(block.state_dict()) == {"weight", "bias"}
    with torch.device("meta"):
        meta = MaskedConv(in_size=3, out=8, k=7, mask="A")
    meta = meta.to_empty(device="cpu")
    meta.reset_parameters()
    torch.testing.assert_close(meta.mask, block.mask)
    with pytest.raises(ValueError):
        MaskedConv(in_size=3, out=8, k=4)
    with pytest.raises(ValueError):
        MaskedConv(in_size=3, out=8, k=3, mask="C")


@pytest.mark.parametrize("heads,channels,groups", [(1, 8, 32), (2, 8, 4), (4, 12, 32)])
def test_self_attention2d_matches_einsum(heads, channels, groups):
    torch.manual_seed(0)
    block = SelfAttention2d(in_size=channels, heads=heads, groups=groups)
    b, h, w = 2, 3, 5
    x = torch.randn(b, channels, h, w)
    out = block(x)
    assert out.shape == x.shape
    g = block.norm.num_groups
    assert channels % g == 0 and g <= groups
    n = F.group_norm(x, g, block.norm.weight, block.norm.bias, block.norm.eps)
    qkv = torch.einsum("oc,bchw->bohw", block.qkv.weight[:, :, 0, 0], n) + block.qkv.bias[:, None, None]
    q, k, v = qkv.reshape(b, 3, heads, channels // heads, h * w).unbind(1)  # [B, heads, d, N]
    attn = torch.einsum("bhdn,bhdm->bhnm", q, k) / math.sqrt(channels // heads)
    attn = attn.softmax(-1)
    o = torch.einsum("bhnm,bhdm->bhdn", attn, v).reshape(b, channels, h, w)
    want = x + torch.einsum("oc,bchw->bohw", block.proj.weight[:, :, 0, 0], o) \
        + block.proj.bias[:, None, None]
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-5)
    assert block.label() == ("self-attention, 1 head" if heads == 1 else f"self-attention, {heads} heads")


def test_film_matches_formula():
    block = FiLM(in_size=4, cond=6)
    x, c = torch.randn(2, 4, 3, 3), torch.randn(2, 6)
    ss = c @ block.linear.weight.T + block.linear.bias
    scale, shift = ss[:, :4], ss[:, 4:]
    want = x * (1 + scale.view(2, 4, 1, 1)) + shift.view(2, 4, 1, 1)
    torch.testing.assert_close(block(x, c), want)
    assert block.label() == "FiLM"


@pytest.mark.parametrize("args,size", [({"scale": 2}, (8, 10)), ({"scale": 0.5}, (2, 2)),
                                       ({"size": 7, "mode": "bilinear"}, (7, 7)),
                                       ({"size": [6, 9], "mode": "bicubic",
                                         "align_corners": True}, (6, 9))])
def test_upsample_equals_interpolate(args, size):
    from blocks.resample import Upsample
    x = torch.randn(2, 3, 4, 5)
    out = Upsample(**args)(x)
    want = F.interpolate(x, size=args.get("size") if not isinstance(args.get("size"), list)
                         else tuple(args["size"]), scale_factor=args.get("scale"),
                         mode=args.get("mode", "nearest"), align_corners=args.get("align_corners"))
    assert out.shape[-2:] == size
    torch.testing.assert_close(out, want)


def test_upsample_rejects_both_or_neither_and_bad_modes():
    from blocks.resample import Upsample
    for bad in ({}, {"scale": 2, "size": 4}, {"scale": 2, "mode": "linear"},
                {"scale": 2, "align_corners": True}):
        with pytest.raises(ValueError):
            Upsample(**bad)
