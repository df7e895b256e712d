"""Latent-variable blocks for autoencoders and diffusion models: vector quantisation, the
reparameterisation trick, timestep embeddings and one-hot labels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from blocks.registry import register


@register("vector_quantizer", in_dim=1, outputs=("quantized", "indices", "loss"),
          example={"args": {"codes": 16}, "inputs": [[2, 8, 4, 4]]})
class VectorQuantizer(nn.Module):
    """VQ-VAE codebook (van den Oord et al., 2017): snap each position to its nearest code.

    [B, D, H, W] -> quantized [B, D, H, W], indices [B, H, W] (long), loss [] (a scalar).
    `loss` = mean ||sg[x] - q||^2 + beta * mean ||x - sg[q]||^2 (codebook + commitment terms).
    With `straight_through` (the default) `quantized` is x + (q - x).detach(): the value of q,
    the gradient of x, so the decoder's gradient reaches the encoder. With it false `quantized`
    is q itself: the encoder is then trained only through the loss's commitment term, and the
    codebook receives both the loss's gradient and the decoder's through q.
    """

    def __init__(self, in_size: int, codes: int, beta: float = 0.25, straight_through: bool = True):
        super().__init__()
        self.codes, self.beta, self.straight_through = codes, beta, straight_through
        self.codebook = nn.Embedding(codes, in_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # runs after nn.Embedding's own normal init (the engine resets children first)
        nn.init.uniform_(self.codebook.weight, -1.0 / self.codes, 1.0 / self.codes)

    def label(self) -> str:
        return f"VQ, {self.codes} x {self.codebook.embedding_dim}"

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, d, h, w = x.shape
        flat = x.permute(0, 2, 3, 1).reshape(-1, d)  # [B*H*W, D]
        weight = self.codebook.weight
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ weight.t()
                + weight.pow(2).sum(1)[None, :])
        indices = dist.argmin(1).reshape(b, h, w)
        q = self.codebook(indices).permute(0, 3, 1, 2)  # [B, D, H, W]
        loss = F.mse_loss(q, x.detach()) + self.beta * F.mse_loss(x, q.detach())
        quantized = x + (q - x).detach() if self.straight_through else q
        return quantized, indices, loss

    def extra_repr(self) -> str:
        return (f"codes={self.codes}, dim={self.codebook.embedding_dim}, beta={self.beta}, "
                f"straight_through={self.straight_through}")


@register("reparameterize", inputs=2,
          example={"args": {}, "inputs": [[2, 4], [2, 4]]})
class Reparameterize(nn.Module):
    """The reparameterisation trick (Kingma & Welling, 2014): sample z ~ N(mean, exp(logvar)).

    [B, D] mean, [B, D] logvar -> [B, D]: mean + exp(0.5 * logvar) * eps in training, the mean
    in eval.
    """

    def label(self) -> str:
        return "z ~ N(mu, sigma)"

    def forward(self, mean: Tensor, logvar: Tensor) -> Tensor:
        if not self.training:
            return mean
        return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)


@register("time_embedding", layout=False,
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


@register("one_hot", layout=False,
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
