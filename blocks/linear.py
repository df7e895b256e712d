"""Fully connected layers and embedding tables (a learned vector per integer id)."""

from __future__ import annotations

from torch import nn

from engine.blocks.registry import register
from engine.blocks.shape_rules import Rule, numel


@register("linear", category="linear", in_dim=-1, layout=False,
          example={"args": {"out": 5}, "inputs": [[2, 3, 7]]})
class Linear(nn.Linear):
    """Affine map of the last dimension (`in_size` features are inferred).

    [B, ..., D] -> [B, ..., out]. A channels-first feature map ([B, C, H, W] from a conv) is
    refused: flatten it or permute it to channels-last first.
    """

    # a fresh tensor its backward does not save: a later in-place op may overwrite it
    # (engine/compiler/liveness.py)
    overwritable_output = True

    def __init__(self, in_size: int, out: int, bias: bool = True):
        super().__init__(in_size, out, bias)

    @staticmethod
    def shape_rule(args: dict, shapes: list) -> Rule | None:
        """[B, ..., D] -> [B, ..., out], D MACs per output."""
        if len(shapes) != 1 or len(shapes[0]) < 2:
            return None
        out = (*shapes[0][:-1], args["out"])
        return [out], numel(out) * shapes[0][-1]

    def label(self) -> str:
        return f"fc, {self.out_features}"


@register("embedding", category="linear", layout=False,
          example={"args": {"num": 10, "dim": 4}, "inputs": [[2, 5]], "dtype": "long"})
class Embedding(nn.Embedding):
    """A learned vector per integer id (a lookup table); `pad` marks an id whose vector stays zero.

    [B, T] (ids < num) -> [B, T, dim].
    """

    def __init__(self, num: int, dim: int, pad: int | None = None):
        super().__init__(num, dim, padding_idx=pad)

    def label(self) -> str:
        return f"embedding, {self.num_embeddings} x {self.embedding_dim}"
