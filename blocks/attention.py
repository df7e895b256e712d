"""Attention."""

from __future__ import annotations

from torch import Tensor, nn

from blocks.registry import register


@register("attention", in_dim=-1, inputs=(1, 3), layout=False,
          example={"args": {"heads": 2}, "inputs": [[2, 5, 8]]})
class MultiHeadAttention(nn.MultiheadAttention):
    """Multi-head scaled dot-product attention (Vaswani et al., 2017), batch first.

    [B, T, D] (query) [, [B, S, D] key [, [B, S, D] value]] -> [B, T, D]. One input gives
    self-attention. Parameters are laid out as `nn.MultiheadAttention`'s (`in_proj_weight`,
    `in_proj_bias`, `out_proj`), so its weights load directly.
    """

    def __init__(self, in_size: int, heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__(in_size, heads, dropout=dropout, bias=bias, batch_first=True)

    def label(self) -> str:
        return f"multi-head attention, {self.num_heads} heads"

    def forward(self, query: Tensor, key: Tensor | None = None,
                value: Tensor | None = None) -> Tensor:
        key = query if key is None else key
        value = key if value is None else value
        out, _ = super().forward(query, key, value, need_weights=False)
        return out

    def reset_parameters(self) -> None:
        self._reset_parameters()
