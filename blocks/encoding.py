"""Encodings of positions, timesteps and class labels: fixed or learned position codes,
diffusion timestep embeddings, one-hot labels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.blocks.registry import register


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


@register("positional_encoding", category="encoding", in_dim=-1, same_shape=True, layout=False,
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


@register("time_embedding", category="encoding", layout=False,
          example={"args": {"dim": 8}, "inputs": [[3]], "dtype": "long"})
class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of diffusion timesteps (Vaswani et al., 2017; Ho et al., 2020).

    [B] (long or float t) -> [B, dim]: [sin(t * f_i), cos(t * f_i)] with
    f_i = 10000^(-i / (dim/2 - 1)), as in DDPM's reference code (zero-padded if dim is odd).
    No parameters.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def label(self) -> str:
        return f"sinusoidal t, {self.dim}"

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        scale = math.log(10000) / max(half - 1, 1)
        freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -scale)
        args = t.float()[:, None] * freqs[None, :]
        emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
        return F.pad(emb, (0, 1)) if self.dim % 2 else emb

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


@register("one_hot", category="encoding", layout=False,
          example={"args": {"classes": 5}, "inputs": [[4]], "dtype": "long"})
class OneHot(nn.Module):
    """One-hot encoding of class labels (class conditioning). [B] (long, < classes) -> [B, classes] float."""

    def __init__(self, classes: int):
        super().__init__()
        self.classes = classes

    def label(self) -> str:
        return f"one-hot, {self.classes}"

    def forward(self, labels: Tensor) -> Tensor:
        # a comparison rather than F.one_hot, which must read the values (no meta-device run)
        classes = torch.arange(self.classes, device=labels.device)
        return (labels[..., None] == classes).float()

    def extra_repr(self) -> str:
        return f"classes={self.classes}"
