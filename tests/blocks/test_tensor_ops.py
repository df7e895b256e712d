"""Tensor plumbing (blocks/tensor_ops.py): constant scaling and padding masks."""

from __future__ import annotations

import torch

from engine.blocks.registry import lookup
from engine.blocks.tensor_ops import PaddingMask


def _block(name, **args):
    return lookup(name).cls(**args)


def test_scale_multiplies():
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(_block("scale", factor=0.1)(x), 0.1 * x)
    assert not list(_block("scale", factor=0.1).parameters())


def test_padding_mask():
    tokens = torch.tensor([[5, 3, 0, 0], [1, 0, 2, 0]])
    assert PaddingMask()(tokens).tolist() == [[False, False, True, True], [False, True, False, True]]
    assert PaddingMask(pad=3)(tokens).tolist() == [[False, True, False, False], [False] * 4]
