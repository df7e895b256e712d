"""Fully connected layers."""

from __future__ import annotations

from torch import nn

from blocks.registry import register


@register("linear", in_dim=-1, layout=False,
          example={"args": {"out": 5}, "inputs": [[2, 3, 7]]})
class Linear(nn.Linear):
    """Affine map of the last dimension (`in_size` features are inferred).

    [B, ..., D] -> [B, ..., out]. A channels-first feature map ([B, C, H, W] from a conv) is
    refused: flatten it or permute it to channels-last first.
    """

    def __init__(self, in_size: int, out: int, bias: bool = True):
        super().__init__(in_size, out, bias)
