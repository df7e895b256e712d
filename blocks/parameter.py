"""Learned tensors held directly by the enclosing module (class tokens, position tables, layer scale)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from blocks.registry import register


@register("parameter", inputs=0, kind="param",
          example={"args": {"shape": [1, 1, 8], "init": 0.0}, "inputs": []})
class LearnedTensor(nn.Module):
    """A learned tensor of a fixed `shape`, registered on the enclosing module under the node's name.

    () -> [shape]. `init` is a constant fill value, or `normal` with `std`, or `trunc_normal`.
    """

    def __init__(self, shape: list[int], init: float | str = 0.0, std: float = 0.02):
        super().__init__()
        self.init, self.std = init, std
        self.weight = nn.Parameter(torch.empty(shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fill_parameter(self.weight, self.init, self.std)

    def forward(self) -> Tensor:
        return self.weight


def fill_parameter(weight: Tensor, init: float | str, std: float) -> None:
    with torch.no_grad():
        if init == "normal":
            nn.init.normal_(weight, std=std)
        elif init == "trunc_normal":
            nn.init.trunc_normal_(weight, std=std)
        else:
            weight.fill_(float(init))
