"""The pooling blocks (blocks/pool.py) that torch has no layer for."""

from __future__ import annotations

import torch

from engine.blocks.registry import lookup


def _block(name, **args):
    return lookup(name).cls(**args)


def test_global_sum_pool():
    x = torch.randn(2, 4, 3, 5)
    block = _block("global_sum_pool")
    torch.testing.assert_close(block(x), x.sum((2, 3)))
    assert block.label() == "sum pool"
