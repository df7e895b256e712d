"""Latent-variable blocks: the VQ-VAE codebook and the VAE's reparameterisation trick."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.blocks.registry import register


@register("vector_quantizer", category="latent", in_dim=1, outputs=("quantized", "indices", "loss"),
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


@register("reparameterize", category="latent", inputs=2,
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
