"""What the torchvision parity tests share: the oracle's weights made into a fair comparison."""

from __future__ import annotations

import torch


def randomise_batchnorm(model: torch.nn.Module) -> None:
    """Fresh batch-norm statistics are 0/1 and affine 1/0, which would hide a mismatch in eval
    mode: draw all four at random (in place, no autograd)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
