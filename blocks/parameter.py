"""Learned tensors held directly by the enclosing module (class tokens, position tables, layer scale)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.blocks.registry import register


@register("parameter", category="parameter", inputs=0, kind="param",
          example={"args": {"shape": [1, 1, 8]}, "inputs": []})
class LearnedTensor(nn.Module):
    """A learned tensor of a fixed `shape`, registered on the enclosing module under the node's name.

    () -> [shape]. The node's `init:` is the rule for the tensor itself: a constant
    (`init: 1e-6`), a scheme (`init: zeros`) or `{trunc_normal: {std: 0.02}}`; default zeros.
    """

    def __init__(self, shape: list[int]):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(shape))

    def label(self) -> str:
        return "learned " + "x".join(map(str, self.weight.shape))

    def forward(self) -> Tensor:
        return self.weight
