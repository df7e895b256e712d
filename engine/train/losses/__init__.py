"""Losses, in one place, registered by name (`loss: {name: cross_entropy, label_smoothing: 0.1}`)."""

from __future__ import annotations

import torch
from torch import nn

from engine.train.registry import LOSSES

LOSSES.add("cross_entropy", nn.CrossEntropyLoss)
LOSSES.add("mse", nn.MSELoss)
LOSSES.add("l1", nn.L1Loss)
LOSSES.add("bce_logits", nn.BCEWithLogitsLoss)
LOSSES.add("nll", nn.NLLLoss)


def make_loss(cfg: dict) -> nn.Module:
    """The loss module of a recipe's `loss:` entry (its other keys are the loss's arguments)."""
    args = {k: torch.tensor(v, dtype=torch.float32) if isinstance(v, list) else v
            for k, v in cfg.items() if k != "name"}  # `weight: [1, 2, ...]`: a tensor argument
    return LOSSES.get(cfg["name"])(**args)
