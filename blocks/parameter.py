"""Tensors held directly by the enclosing module: learned ones (class tokens, position tables,
layer scale) and fixed buffers computed at build time (Swin's relative position index)."""

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

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)  # the default; a node's `init:` rule is applied after this

    def label(self) -> str:
        return "learned " + "x".join(map(str, self.weight.shape))

    def forward(self) -> Tensor:
        return self.weight


_DTYPES = ("float32", "float64", "float16", "bfloat16", "long", "int32", "int64", "bool")


@register("buffer", category="parameter", inputs=0, kind="param",
          example={"args": {"value": [[0, 1, 2], [2, 1, 0]], "dtype": "long"}, "inputs": []})
class ConstantTensor(nn.Module):
    """A fixed, non-trainable tensor computed at build time from `value` (a number or a nested
    list, usually an expression over the params), registered on the enclosing module with
    `register_buffer` under the node's name: Swin's `relative_position_index`.

    () -> [shape of value]. `dtype`: float32 (default), float64, float16, bfloat16, long,
    int32, int64 or bool. `persistent: false` keeps it out of the state_dict (a mask the model
    can always recompute). It follows the model's device, and a floating one its dtype too.
    """

    def __init__(self, value: list | float | int, dtype: str = "float32", persistent: bool = True):
        super().__init__()
        if dtype not in _DTYPES:
            raise ValueError(f"buffer: unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}")
        self.value, self.dtype, self.persistent = value, dtype, persistent
        here = torch.empty(()).device  # the default device: meta while the engine infers shapes
        self.register_buffer("weight", self.make().to(here), persistent=persistent)

    def make(self) -> Tensor:
        """The tensor of `value`, on the CPU (made there, so that a bad value fails on meta too)."""
        try:
            return torch.tensor(self.value, dtype=getattr(torch, self.dtype), device="cpu")
        except (TypeError, ValueError, RuntimeError) as err:  # ragged lists, strings
            raise ValueError(f"buffer: value is not a number or a rectangular nested list of "
                             f"numbers ({err})") from None

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.copy_(self.make())

    def label(self) -> str:
        shape = "x".join(map(str, self.weight.shape)) or "scalar"
        return f"buffer {shape} ({self.dtype})"

    def forward(self) -> Tensor:
        return self.weight

    def extra_repr(self) -> str:
        return f"shape={list(self.weight.shape)}, dtype={self.dtype}, persistent={self.persistent}"
