"""The adversarial objectives and regularisers of the GAN family, as plain functions of scores.

`d_loss(objective, real, fake)` and `g_loss(objective, fake)` take the discriminator's raw
outputs (logits or critic values) on real and generated images:

- `bce` (Goodfellow et al., 2014), with the generator's non-saturating loss -log D(G(z));
  computed on logits (softplus), the same as the seeds' sigmoid + BCE without its overflow;
- `least_squares` (Mao et al., 2017): targets 1 and 0, both losses halved as in the paper;
- `hinge` (Lim & Ye, 2017; as used by SAGAN): D max(0, 1 - D(x)) + max(0, 1 + D(G(z)));
- `wasserstein` (Arjovsky et al., 2017): D E[D(G(z))] - E[D(x)], G -E[D(G(z))]; its Lipschitz
  constraint is a separate choice: weight clipping, `gradient_penalty` or `divergence_penalty`.

The energy-based discriminators are autoencoders: `energy` and `l1_energy` give their per-image
reconstruction energies (EBGAN, BEGAN); `pull_away` is EBGAN's repelling regulariser.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

OBJECTIVES = ("bce", "least_squares", "hinge", "wasserstein")


def d_loss(objective: str, real: Tensor, fake: Tensor) -> Tensor:
    if objective == "bce":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if objective == "least_squares":
        return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())
    if objective == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if objective == "wasserstein":
        return fake.mean() - real.mean()
    raise ValueError(f"unknown GAN objective {objective!r}; known: {', '.join(OBJECTIVES)}")


def g_loss(objective: str, fake: Tensor) -> Tensor:
    if objective == "bce":
        return F.softplus(-fake).mean()  # non-saturating: -log sigmoid(D(G(z)))
    if objective == "least_squares":
        return 0.5 * (fake - 1).pow(2).mean()
    if objective in ("hinge", "wasserstein"):
        return -fake.mean()
    raise ValueError(f"unknown GAN objective {objective!r}; known: {', '.join(OBJECTIVES)}")


def input_gradients(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """d sum(critic(x)) / dx, per image, kept in the graph (the penalty is trained through)."""
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    score = critic(x)
    (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
    return grad.flatten(1)


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP (Gulrajani et al., 2017): E[(||grad D(x_hat)||_2 - 1)^2] on random points
    x_hat = e x + (1 - e) G(z) of the lines between real and generated images, e ~ U[0, 1]."""
    e = torch.rand(len(real), *[1] * (real.dim() - 1), device=real.device, generator=generator)
    x_hat = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)
    norms = input_gradients(critic, x_hat).float().norm(2, dim=1)
    return (norms - 1).pow(2).mean()


def divergence_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                       k: float = 2.0, p: float = 6.0) -> Tensor:
    """WGAN-div (Wu et al., 2018): (k/2) E[||grad D(x)||^p + ||grad D(G(z))||^p] at the real
    and the generated images themselves (no interpolation); the norms are ||g||_2^p written as
    (sum g^2)^(p/2), as in the paper's code."""
    real_sq = input_gradients(critic, real.detach()).float().pow(2).sum(dim=1)
    fake_sq = input_gradients(critic, fake.detach()).float().pow(2).sum(dim=1)
    return (real_sq.pow(p / 2) + fake_sq.pow(p / 2)).mean() * k / 2


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """R1 (Mescheder et al., 2018), StyleGAN's regulariser: E[||grad D(x)||_2^2] at the real
    images, to be weighted by gamma / 2; it keeps the discriminator flat on the data."""
    return input_gradients(critic, real.detach()).float().pow(2).sum(dim=1).mean()


def energy(recon: Tensor, images: Tensor) -> Tensor:
    """EBGAN's energy: the autoencoder's mean squared reconstruction error, per image."""
    return (recon.float() - images.float()).pow(2).flatten(1).mean(dim=1)


def l1_energy(recon: Tensor, images: Tensor) -> Tensor:
    """BEGAN's energy: the mean absolute reconstruction error, per image."""
    return (recon.float() - images.float()).abs().flatten(1).mean(dim=1)


def pull_away(codes: Tensor) -> Tensor:
    """EBGAN's pulling-away term: the mean squared cosine similarity of the batch's codes over
    all ordered pairs i != j (Zhao et al., 2017, eq. 6)."""
    unit = F.normalize(codes.flatten(1).float(), dim=1)
    cosine = unit @ unit.T
    n = len(unit)
    return (cosine.pow(2).sum() - cosine.diagonal().pow(2).sum()) / (n * (n - 1))
