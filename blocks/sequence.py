"""Sequence-model blocks: padding masks, positional encodings, the attention of RNN
encoder-decoders (Bahdanau's additive, Luong's dot and general) and transformer encoder and
decoder layers with torch's parameter names."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blocks.registry import register


@register("padding_mask", layout=False,
          example={"args": {"pad": 0}, "inputs": [[2, 5]], "dtype": "long"})
class PaddingMask(nn.Module):
    """Where a batch of token ids is padding.

    [B, T] (long ids) -> [B, T] (bool): True where the id equals `pad`, the convention of
    every mask input here and of `nn.MultiheadAttention`'s `key_padding_mask`.
    """

    def __init__(self, pad: int = 0):
        super().__init__()
        self.pad = pad

    def label(self) -> str:
        return f"padding mask (id {self.pad})"

    def forward(self, tokens: Tensor) -> Tensor:
        return tokens == self.pad

    def extra_repr(self) -> str:
        return f"pad={self.pad}"


def sinusoid_table(length: int, dim: int, device=None, dtype=None) -> Tensor:
    """Vaswani et al.'s table [length, dim]: pe[pos, 2i] = sin(pos / 10000^(2i/dim)),
    pe[pos, 2i+1] = cos(pos / 10000^(2i/dim))."""
    pos = torch.arange(length, device=device, dtype=torch.float64)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float64)
                     * (-math.log(10000.0) / dim))  # 10000^(-2i/dim), one per sin/cos pair
    table = torch.zeros(length, dim, device=device, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])  # an odd dim has one sin more than cos
    return table.to(dtype or torch.get_default_dtype())


@register("positional_encoding", in_dim=-1, same_shape=True, layout=False,
          example={"args": {"max_len": 16}, "inputs": [[2, 5, 8]]})
class PositionalEncoding(nn.Module):
    """Adds each position's code to a sequence of vectors.

    [B, T, D] -> [B, T, D]: dropout(x * scale + pe[:T]), T <= max_len. `kind: sinusoidal`
    uses the fixed table of Vaswani et al. (2017) (a non-persistent buffer: nothing to save or
    load); `kind: learned` a trainable `pe` [max_len, D], initialised N(0, 0.02^2) as in BERT
    and GPT-2. `scale: sqrt(D)` gives the transformer's scaling of its embeddings.
    """

    def __init__(self, in_size: int, kind: str = "sinusoidal", max_len: int = 5000,
                 dropout: float = 0.0, scale: float = 1.0):
        super().__init__()
        if kind not in ("sinusoidal", "learned"):
            raise ValueError(f"positional_encoding kind must be one of 'sinusoidal', 'learned', "
                             f"got {kind!r}")
        self.kind, self.max_len, self.scale = kind, max_len, scale
        if kind == "learned":
            self.pe = nn.Parameter(torch.empty(max_len, in_size))
        else:
            self.register_buffer("pe", torch.empty(max_len, in_size), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # also refills the sinusoidal buffer, which `to_empty` leaves uninitialised
        with torch.no_grad():
            if self.kind == "learned":
                nn.init.normal_(self.pe, std=0.02)
            else:
                self.pe.copy_(sinusoid_table(*self.pe.shape, device=self.pe.device))

    def label(self) -> str:
        return f"{self.kind} positions"

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[-2]
        if t > self.max_len:
            raise ValueError(f"positional_encoding: sequence of {t} steps exceeds max_len "
                             f"{self.max_len}")
        return self.dropout(x * self.scale + self.pe[:t].to(x.dtype))

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, max_len={self.max_len}, scale={self.scale:g}"


def _mask_scores(scores: Tensor, mask: Tensor | None) -> Tensor:
    # -inf, not a large negative number: masked positions get exactly zero weight
    return scores if mask is None else scores.masked_fill(mask, float("-inf"))


@register("additive_attention", in_dim=-1, inputs=(2, 4), outputs=("context", "weights"),
          layout=False,
          example={"args": {"hidden": 7}, "inputs": [[2, 6], [2, 5, 4], [2, 5]],
                   "dtypes": ["float32", "float32", "bool"]})
class AdditiveAttention(nn.Module):
    """Bahdanau et al.'s (2015) additive attention: a decoder state reads the encoder outputs.

    [B, Dq] (query), [B, S, Dk] (keys) [, [B, S] (bool mask, True = padding)] ->
    context [B, Dk], weights [B, S]: weights = softmax over S of v . tanh(W q + U k_s),
    context = sum_s weights_s k_s. `query` is W (Dq -> hidden, no bias), `key` is U
    (Dk -> hidden, with the bias), `score` is v (hidden -> 1). Padded keys get weight 0.

    `projected: true` takes U k + b already computed, as the paper's implementation does once
    per sentence rather than once per decoder step (a `linear` node on the encoder side):
    [B, Dq] (query), [B, S, hidden] (projected keys), [B, S, Dv] (values) [, [B, S] mask] ->
    context [B, Dv], weights [B, S].
    """

    def __init__(self, in_size: int, in_sizes: list, hidden: int, projected: bool = False):
        super().__init__()
        dq = in_sizes[0]  # the engine fills these from the inputs' last dims
        self.query = nn.Linear(dq, hidden, bias=False)
        # one bias for the sum: W q + U k + b
        self.key = None if projected else nn.Linear(in_sizes[1], hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def label(self) -> str:
        return f"additive attention, {self.score.in_features}"

    def forward(self, query: Tensor, keys: Tensor, *rest: Tensor) -> tuple[Tensor, Tensor]:
        if self.key is None:  # (query, U k + b, values [, mask])
            projected, values, mask = keys, rest[0], (rest[1] if len(rest) > 1 else None)
        else:  # (query, keys [, mask]): the keys are the values
            projected, values, mask = self.key(keys), keys, (rest[0] if rest else None)
        energy = torch.tanh(self.query(query)[:, None, :] + projected)  # [B, S, hidden]
        scores = _mask_scores(self.score(energy).squeeze(-1), mask)  # [B, S]
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights[:, None, :], values).squeeze(1)
        return context, weights


@register("dot_attention", in_dim=-1, inputs=(2, 3), outputs=("context", "weights"),
          layout=False,
          example={"args": {"score": "general"}, "inputs": [[2, 6], [2, 5, 4], [2, 5]],
                   "dtypes": ["float32", "float32", "bool"]})
class DotAttention(nn.Module):
    """Luong et al.'s (2015) multiplicative attention: `dot` or `general` scores.

    [B, Dq] (query), [B, S, Dk] (keys) [, [B, S] (bool mask, True = padding)] ->
    context [B, Dk], weights [B, S]: weights = softmax over S of score(q, k_s),
    context = sum_s weights_s k_s. `dot`: q . k_s (needs Dq == Dk); `general`: q . (W k_s)
    with `proj` = W (Dk -> Dq, no bias). Unscaled, as in the paper. Padded keys get weight 0.
    """

    def __init__(self, in_size: int, in_sizes: list, score: str = "general"):
        super().__init__()
        if score not in ("dot", "general"):
            raise ValueError(f"dot_attention score must be one of 'dot', 'general', got {score!r}")
        dq, dk = in_sizes[0], in_sizes[1]
        if score == "dot" and dq != dk:
            raise ValueError(f"dot_attention score 'dot' needs query and keys of one width, got "
                             f"{dq} and {dk}: use score: general, which learns a projection")
        self.kind = score
        self.proj = nn.Linear(dk, dq, bias=False) if score == "general" else None

    def label(self) -> str:
        return f"{self.kind} attention"

    def forward(self, query: Tensor, keys: Tensor,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        projected = keys if self.proj is None else self.proj(keys)  # [B, S, Dq]
        scores = _mask_scores(torch.bmm(projected, query[:, :, None]).squeeze(-1), mask)
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights[:, None, :], keys).squeeze(1)
        return context, weights

    def extra_repr(self) -> str:
        return f"score={self.kind!r}"


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


@register("transformer_encoder_layer", in_dim=-1, inputs=(1, 2), same_shape=True, layout=False,
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


@register("transformer_decoder_layer", in_dim=-1, inputs=(2, 3), same_shape=True, layout=False,
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
