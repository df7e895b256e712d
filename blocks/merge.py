"""Blocks that merge several inputs: residual sums, products, matrix products, concatenation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.blocks.registry import register
from engine.blocks.shape_rules import Rule, broadcast, dim_index


@register("add", category="merge", inputs=(2, -1),
          example={"args": {}, "inputs": [[2, 3, 4], [2, 3, 4]]})
class Add(nn.Module):
    """Element-wise sum of its inputs (a residual connection). [B, *] x N -> [B, *].

    Shapes must be equal or broadcast (a [1, T, D] position table onto [B, T, D]).
    """

    # a generated forward writes `x.add_(y)` where the graph proves nothing else reads x
    # (engine/compiler/liveness.py); a sum is a fresh tensor add's backward does not save
    inplace_method = "add_"
    overwritable_output = True

    def __init__(self):
        super().__init__()

    def label(self) -> str:
        return "+"

    @staticmethod
    def shape_rule(args: dict, shapes: list) -> Rule | None:
        out = broadcast(shapes)
        return None if out is None else ([out], 0)

    def forward(self, x: Tensor, *rest: Tensor) -> Tensor:
        for other in rest:
            x = x + other
        return x


@register("mul", category="merge", inputs=2,
          example={"args": {}, "inputs": [[4, 1, 1], [2, 4, 3, 3]]})
class Mul(nn.Module):
    """Element-wise product with broadcasting (layer scale, gating). [*], [B, *] -> [B, *]."""

    # a fresh tensor mul's backward does not save (it keeps its operands): a later add may
    # overwrite it, as torchvision's ConvNeXt block does with `result += input`
    overwritable_output = True

    def __init__(self):
        super().__init__()

    def label(self) -> str:
        return "×"

    shape_rule = Add.shape_rule

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return x * y


@register("matmul", category="merge", inputs=2, layout=False,
          example={"args": {"transpose_b": True}, "inputs": [[2, 3, 5, 4], [2, 3, 6, 4]]})
class MatMul(nn.Module):
    """Matrix product over the last two dims, batched and broadcast as `torch.matmul`: attention
    written out, `scores = q k^T` (`transpose_b: true`) and `out = softmax(scores) v`.

    [*, N, K], [*, K, M] -> [*, N, M]; with `transpose_b: true` the second is [*, M, K].
    No parameters.
    """

    def __init__(self, transpose_b: bool = False):
        super().__init__()
        self.transpose_b = transpose_b

    def label(self) -> str:
        return "a @ b^T" if self.transpose_b else "a @ b"

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return a.matmul(b.transpose(-2, -1) if self.transpose_b else b)

    def extra_repr(self) -> str:
        return f"transpose_b={self.transpose_b}"


@register("concat", category="merge", inputs=(1, -1),
          example={"args": {"dim": 1}, "inputs": [[2, 3, 4, 4], [2, 5, 4, 4]]})
class Concat(nn.Module):
    """Concatenate inputs along `dim` (channels by default). [B, C1, *], [B, C2, *] -> [B, C1+C2, *].

    `broadcast_batch: true` first expands inputs with batch 1 (a learned class token) to the
    batch of the others.
    """

    def __init__(self, dim: int = 1, broadcast_batch: bool = False):
        super().__init__()
        self.dim, self.broadcast_batch = dim, broadcast_batch

    @staticmethod
    def shape_rule(args: dict, shapes: list) -> Rule | None:
        """Equal ranks and sizes except at `dim`, which adds up (batch 1 broadcast if asked)."""
        rank = len(shapes[0])
        dim = dim_index(args.get("dim", 1), rank)
        if dim is None or rank == 0 or any(len(s) != rank for s in shapes):
            return None
        if args.get("broadcast_batch") and dim != 0:
            batch = max(s[0] for s in shapes)
            if any(s[0] not in (1, batch) for s in shapes):
                return None
            shapes = [(batch, *s[1:]) for s in shapes]
        first = shapes[0]
        if any(s[i] != first[i] for s in shapes for i in range(rank) if i != dim):
            return None
        return [(*first[:dim], sum(s[dim] for s in shapes), *first[dim + 1:])], 0

    def forward(self, *xs: Tensor) -> Tensor:
        if self.broadcast_batch:
            batch = max(x.shape[0] for x in xs)
            xs = tuple(x.expand(batch, *x.shape[1:]) for x in xs)
        return torch.cat(xs, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


@register("stack", category="merge", inputs=(1, -1),
          example={"args": {}, "inputs": [[2, 3, 4, 4], [2, 3, 4, 4]]})
class Stack(nn.Module):
    """Stack equal-shaped inputs along a new `dim` (a recursion's outputs). [B, *] x N -> [B, N, *]."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.stack(xs, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


@register("weighted_sum", category="merge", inputs=(1, -1),
          example={"args": {"count": 3}, "inputs": [[2, 3, 4, 4], [2, 3, 4, 4], [2, 3, 4, 4]]})
class WeightedSum(nn.Module):
    """Sum of its `count` inputs with learned scalar weights: sum_k w_k x_k. [B, *] x N -> [B, *].

    DRCN's output ensemble (Kim et al., "Deeply-Recursive Convolutional Network for Image
    Super-Resolution", CVPR 2016, eq. 7): the weights start at 1/N and are not normalised.
    """

    def __init__(self, count: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(count))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.fill_(1.0 / len(self.weight))

    def forward(self, *xs: Tensor) -> Tensor:
        if len(xs) != len(self.weight):
            raise ValueError(f"weighted_sum has {len(self.weight)} weights but got {len(xs)} inputs")
        return sum(w * x for w, x in zip(self.weight, xs))

    def extra_repr(self) -> str:
        return f"count={len(self.weight)}"
