"""Attention: multi-head over tokens, self-attention over the positions of a feature map
(DDPM's U-Net, SAGAN), and the attention of RNN encoder-decoders (Bahdanau's additive,
Luong's dot and general)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from engine.blocks.registry import register


@register("attention", category="attention", in_dim=-1, inputs=(1, 3), layout=False,
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


@register("self_attention2d", category="attention", in_dim=1, layout=True,
          example={"args": {"heads": 2}, "inputs": [[2, 8, 4, 5]]})
class SelfAttention2d(nn.Module):
    """Self-attention over the H*W positions of a feature map, as in DDPM's U-Net (Ho et al., 2020).

    [B, C, H, W] -> [B, C, H, W]: x + proj(attention(qkv(norm(x)))), with `norm` a group norm
    (the largest group count <= `groups` dividing C), `qkv` a 1x1 conv to 3C channels split
    into `heads` heads of C/heads channels (scaled by 1/sqrt(C/heads)), `proj` a 1x1 conv.
    """

    def __init__(self, in_size: int, heads: int = 1, groups: int = 32):
        super().__init__()
        if in_size % heads:
            raise ValueError(f"self_attention2d: heads ({heads}) must divide channels ({in_size})")
        self.heads = heads
        groups = max(g for g in range(1, min(groups, in_size) + 1) if in_size % g == 0)
        self.norm = nn.GroupNorm(groups, in_size)
        self.qkv = nn.Conv2d(in_size, 3 * in_size, 1)
        self.proj = nn.Conv2d(in_size, in_size, 1)

    def label(self) -> str:
        return f"self-attention, {self.heads} head{'s' if self.heads > 1 else ''}"

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each [B, heads, H*W, C/heads]
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


@register("sagan_attention", category="attention", in_dim=1, layout=True,
          example={"args": {"reduction": 2, "spectral_norm": True}, "inputs": [[2, 8, 3, 4]]})
class SAGANAttention(nn.Module):
    """Self-attention GAN's attention block (Zhang et al., 2019).

    [B, C, H, W] -> [B, C, H, W]: gamma * attend(x) + x over the N = H*W positions. `query`
    and `key` are 1x1 convs to max(1, C // reduction) channels, `value` a 1x1 conv to C;
    each query position takes a softmax over all key positions (no 1/sqrt(d) scaling, as in
    the paper). `gamma` starts at 0, so the block starts as the identity.
    `spectral_norm: true` wraps the three convs in spectral normalisation, as SAGAN does.
    """

    def __init__(self, in_size: int, reduction: int = 8, spectral_norm: bool = False):
        super().__init__()
        inner = max(1, in_size // reduction)
        self.query = _conv1x1(in_size, inner, spectral_norm)
        self.key = _conv1x1(in_size, inner, spectral_norm)
        self.value = _conv1x1(in_size, in_size, spectral_norm)
        self.gamma = nn.Parameter(torch.zeros(1))

    def reset_parameters(self) -> None:
        for conv in (self.query, self.key, self.value):
            _reset_conv(conv)
        nn.init.zeros_(self.gamma)

    def label(self) -> str:
        return "self-attention (SAGAN)"

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q = self.query(x).reshape(b, -1, h * w).transpose(1, 2)  # [B, N, C']
        k = self.key(x).reshape(b, -1, h * w)  # [B, C', N]
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # row i: query i over all keys
        v = self.value(x).reshape(b, c, h * w)
        out = torch.bmm(v, attn.transpose(1, 2)).reshape(b, c, h, w)
        return self.gamma * out + x


def _conv1x1(cin: int, cout: int, spectral: bool) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 1)
    return _spectral_norm(conv) if spectral else conv


def _reset_conv(conv: nn.Conv2d) -> None:
    """A conv's default init, also under a spectral-norm parametrization, where the stored
    parameter is `original` and the power iteration's vectors `_u`, `_v` need fresh values."""
    if not parametrize.is_parametrized(conv, "weight"):
        conv.reset_parameters()
        return
    weight = conv.parametrizations.weight.original
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Conv2d's own scheme
    if conv.bias is not None:
        bound = 1 / math.sqrt(weight[0].numel())
        nn.init.uniform_(conv.bias, -bound, bound)
    sn = conv.parametrizations.weight[0]
    with torch.no_grad():
        sn._u.copy_(F.normalize(torch.randn_like(sn._u), dim=0, eps=sn.eps))
        sn._v.copy_(F.normalize(torch.randn_like(sn._v), dim=0, eps=sn.eps))
        sn._power_method(sn._reshape_weight_to_matrix(weight), 15)


def _mask_scores(scores: Tensor, mask: Tensor | None) -> Tensor:
    # -inf, not a large negative number: masked positions get exactly zero weight
    return scores if mask is None else scores.masked_fill(mask, float("-inf"))


@register("additive_attention", category="attention",
          in_dim=-1, inputs=(2, 4), outputs=("context", "weights"),
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


@register("dot_attention", category="attention", in_dim=-1, inputs=(2, 3), outputs=("context", "weights"),
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
