"""Transposed and masked convolutions (blocks/conv.py) against torch and the shape formula."""

from __future__ import annotations

import pytest
import torch

from engine.blocks.conv import ConvTranspose, MaskedConv


def _grad_of_pixel(block, x, i, j):
    x = x.clone().requires_grad_(True)
    block(x)[0, :, i, j].sum().backward()
    return x.grad[0].abs().sum(0)  # [H, W]: how much each input pixel feeds output (i, j)


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
