"""Activations (blocks/activation.py) against their formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.blocks.registry import lookup


def _block(name, **args):
    return lookup(name).cls(**args)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_elu_matches_formula(alpha):
    x = torch.linspace(-4, 4, 41)
    want = torch.where(x > 0, x, alpha * (torch.exp(x) - 1))
    torch.testing.assert_close(_block("elu", alpha=alpha)(x), want)
    torch.testing.assert_close(_block("elu", alpha=alpha)(x), F.elu(x, alpha))
