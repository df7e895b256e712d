"""Blocks that merge several inputs: residual sums, products, concatenation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from blocks.registry import register


@register("add", inputs=(2, -1),
          example={"args": {}, "inputs": [[2, 3, 4], [2, 3, 4]]})
class Add(nn.Module):
    """Element-wise sum of its inputs (a residual connection). [B, *] x N -> [B, *].

    Shapes must be equal or broadcast (a [1, T, D] position table onto [B, T, D]).
    """

    def __init__(self):
        super().__init__()

    def label(self) -> str:
        return "+"

    def forward(self, x: Tensor, *rest: Tensor) -> Tensor:
        for other in rest:
            x = x + other
        return x


@register("mul", inputs=2,
          example={"args": {}, "inputs": [[4, 1, 1], [2, 4, 3, 3]]})
class Mul(nn.Module):
    """Element-wise product with broadcasting (layer scale, gating). [*], [B, *] -> [B, *]."""

    def __init__(self):
        super().__init__()

    def label(self) -> str:
        return "×"

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return x * y


@register("concat", inputs=(1, -1),
          example={"args": {"dim": 1}, "inputs": [[2, 3, 4, 4], [2, 5, 4, 4]]})
class Concat(nn.Module):
    """Concatenate inputs along `dim` (channels by default). [B, C1, *], [B, C2, *] -> [B, C1+C2, *].

    `broadcast_batch: true` first expands inputs with batch 1 (a learned class token) to the
    batch of the others.
    """

    def __init__(self, dim: int = 1, broadcast_batch: bool = False):
        super().__init__()
        self.dim, self.broadcast_batch = dim, broadcast_batch

    def forward(self, *xs: Tensor) -> Tensor:
        if self.broadcast_batch:
            batch = max(x.shape[0] for x in xs)
            xs = tuple(x.expand(batch, *x.shape[1:]) for x in xs)
        return torch.cat(xs, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
