"""Transformer encoder and decoder layers (Vaswani et al., 2017), with the submodule names of
torch's `nn.TransformerEncoderLayer` and `nn.TransformerDecoderLayer`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.blocks.registry import register


def _activation(name: str):
    activations = {"relu": F.relu, "gelu": F.gelu}  # not a module constant: codegen copies functions
    if name not in activations:
        raise ValueError(f"transformer activation must be one of "
                         f"{', '.join(map(repr, activations))}, got {name!r}")
    return activations[name]


class _TransformerLayer(nn.Module):
    """What both layers share: the feed-forward part, torch's names, the reset."""

    def _init_common(self, in_size: int, heads: int, ffn: int, dropout: float, activation: str,
                     norm_first: bool, eps: float) -> None:
        self.self_attn = nn.MultiheadAttention(in_size, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(in_size, ffn)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn, in_size)
        self.norm1 = nn.LayerNorm(in_size, eps=eps)
        self.norm2 = nn.LayerNorm(in_size, eps=eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation_name, self.norm_first = activation, norm_first
        self.activation = _activation(activation)

    def reset_parameters(self) -> None:
        # nn.MultiheadAttention has no `reset_parameters` (only `_reset_parameters`), so the
        # engine's init after `to_empty` would miss its in-projection without this
        for m in self.modules():
            if isinstance(m, nn.MultiheadAttention):
                m._reset_parameters()

    def _ff(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def _label(self, what: str) -> str:
        norm = "pre-norm" if self.norm_first else "post-norm"
        return f"transformer {what}, {self.self_attn.num_heads} heads, {norm}"


@register("transformer_encoder_layer", category="transformer",
          in_dim=-1, inputs=(1, 2), same_shape=True, layout=False,
          example={"args": {"heads": 2, "ffn": 16}, "inputs": [[2, 5, 8], [2, 5]],
                   "dtypes": ["float32", "bool"]})
class TransformerEncoderLayer(_TransformerLayer):
    """A transformer encoder layer (Vaswani et al., 2017): self-attention, then a two-layer
    feed-forward net, each in a residual connection with layer norm.

    [B, T, D] (x) [, [B, T] (bool mask, True = padding: never attended)] -> [B, T, D].
    Post-norm (the paper's) by default, pre-norm with `norm_first: true`. Submodules are named
    as `nn.TransformerEncoderLayer`'s, so its state_dict loads directly.
    """

    def __init__(self, in_size: int, heads: int, ffn: int, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, eps: float = 1e-5):
        super().__init__()
        self._init_common(in_size, heads, ffn, dropout, activation, norm_first, eps)

    def label(self) -> str:
        return self._label("encoder layer")

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.norm_first:
            x = x + self.dropout1(self._sa(self.norm1(x), mask))
            x = x + self.dropout2(self._ff(self.norm2(x)))
        else:
            x = self.norm1(x + self.dropout1(self._sa(x, mask)))
            x = self.norm2(x + self.dropout2(self._ff(x)))
        return x

    def _sa(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return self.self_attn(x, x, x, key_padding_mask=mask, need_weights=False)[0]


@register("transformer_decoder_layer", category="transformer",
          in_dim=-1, inputs=(2, 3), same_shape=True, layout=False,
          example={"args": {"heads": 2, "ffn": 16}, "inputs": [[2, 4, 8], [2, 5, 8], [2, 5]],
                   "dtypes": ["float32", "float32", "bool"]})
class TransformerDecoderLayer(_TransformerLayer):
    """A transformer decoder layer (Vaswani et al., 2017): causal self-attention, attention
    to the encoder's memory, a feed-forward net, each in a residual connection with layer norm.

    [B, T, D] (x), [B, S, D] (memory) [, [B, S] (bool memory_mask, True = source padding)]
    -> [B, T, D]. With `causal` (the default) position t attends to target positions <= t
    only. Post-norm by default, pre-norm with `norm_first: true`. Submodules are named as
    `nn.TransformerDecoderLayer`'s, so its state_dict loads directly.
    """

    def __init__(self, in_size: int, heads: int, ffn: int, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False, eps: float = 1e-5,
                 causal: bool = True):
        super().__init__()
        self._init_common(in_size, heads, ffn, dropout, activation, norm_first, eps)
        self.causal = causal
        self.multihead_attn = nn.MultiheadAttention(in_size, heads, dropout=dropout,
                                                    batch_first=True)
        self.norm3 = nn.LayerNorm(in_size, eps=eps)
        self.dropout3 = nn.Dropout(dropout)

    def label(self) -> str:
        return self._label("decoder layer")

    def forward(self, x: Tensor, memory: Tensor, memory_mask: Tensor | None = None) -> Tensor:
        t = x.shape[1]
        # True above the diagonal = not allowed: step t never sees a later target token
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1) if self.causal else None
        if self.norm_first:
            x = x + self.dropout1(self._sa(self.norm1(x), future))
            x = x + self.dropout2(self._ca(self.norm2(x), memory, memory_mask))
            x = x + self.dropout3(self._ff(self.norm3(x)))
        else:
            x = self.norm1(x + self.dropout1(self._sa(x, future)))
            x = self.norm2(x + self.dropout2(self._ca(x, memory, memory_mask)))
            x = self.norm3(x + self.dropout3(self._ff(x)))
        return x

    def _sa(self, x: Tensor, future: Tensor | None) -> Tensor:
        return self.self_attn(x, x, x, attn_mask=future, need_weights=False)[0]

    def _ca(self, x: Tensor, memory: Tensor, memory_mask: Tensor | None) -> Tensor:
        return self.multihead_attn(x, memory, memory, key_padding_mask=memory_mask,
                                   need_weights=False)[0]

    def extra_repr(self) -> str:
        return f"causal={self.causal}, norm_first={self.norm_first}"
