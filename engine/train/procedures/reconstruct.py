"""`reconstruct` (plain autoencoders) and `vae` (variational, optionally class-conditional).

Both use networks `encoder` and `decoder`. The AE's encoder gives a code; the VAE's gives
`mean`, `logvar` and a sample `z` (the spec's `reparameterize` node), and its decoder may take
a `label` as well (a conditional VAE: sampling then asks for a class).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.train.evaluation.metrics import per_sample_loss
from engine.train.procedures.generative import Generative
from engine.train.registry import PROCEDURES


@PROCEDURES.register("reconstruct")
class Reconstruct(Generative):
    """Autoencoder: decoder(encoder(x)) against x with the recipe's pixel loss (MSE default)."""

    DEFAULT_LOSS = {"name": "mse"}
    can_sample, can_reconstruct = False, True

    def autoencode(self, model, images: Tensor) -> Tensor:
        return self.network("decoder", model)(self.network("encoder", model)(images))

    def train_step(self, batch) -> dict[str, float]:
        images, _ = batch
        with self.autocast():
            loss = self.loss(self.autoencode(self.model, images).float(), images)
        self.optimize(loss)
        return {"loss": loss.item()}

    @torch.no_grad()
    def eval_step(self, batch, metrics: list[str]) -> dict[str, Tensor]:
        images, _ = batch
        recon = self.autoencode(self.eval_model(), images).float()
        return self.image_eval(recon, images, per_sample_loss(self.loss, recon, images))

    @torch.no_grad()
    def reconstruct(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.autoencode(self.eval_model(), images).float()


@PROCEDURES.register("vae")
class VAE(Generative):
    """Variational autoencoder (Kingma & Welling, 2014): minimise the negative ELBO per image.

    A decoder (and encoder) that takes a `label` input makes it a conditional VAE (Sohn et al.,
    2015): the batch's labels are passed in training, the requested ones in sampling.

    loss = reconstruction + kl_weight * KL(q(z|x) || N(0, I)), both summed over pixels / latent
    dimensions and averaged over the batch. `reconstruction: bce` is the Bernoulli likelihood of
    the paper's MNIST experiments; `mse` is a Gaussian one (sum of squares / 2). (The seed
    averaged the MSE over pixels but summed the KL, which weighs the KL ~800x and blurs every
    sample; `kl_weight` is the explicit knob for that trade, as in beta-VAE.)
    """

    OPTIONS = {"kl_weight": 1.0, "reconstruction": "bce", "classes": 10}
    CHOICES = {"reconstruction": ("bce", "mse")}
    can_reconstruct = True

    @property
    def conditional(self) -> bool:
        return self.takes(self.network("decoder"), "label")

    def decode(self, model, z: Tensor, labels: Tensor | None) -> Tensor:
        decoder = self.network("decoder", model)
        return decoder(z=z, label=labels) if self.conditional else decoder(z)

    def terms(self, model, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-image reconstruction term, KL term, and the reconstruction itself."""
        encoder = self.network("encoder", model)
        code = encoder(images, label=labels) if self.takes(encoder, "label") else encoder(images)
        mean, logvar = code["mean"].float(), code["logvar"].float()
        recon = self.decode(model, code["z"], labels).float()
        if self.options["reconstruction"] == "bce":
            rec = F.binary_cross_entropy(recon, images, reduction="none")
        else:
            rec = 0.5 * (recon - images).pow(2)
        kl = -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(dim=1)
        return rec.flatten(1).sum(dim=1), kl, recon

    def train_step(self, batch) -> dict[str, float]:
        images, labels = batch
        with self.autocast():
            rec, kl, _ = self.terms(self.model, images, labels)
            loss = (rec + self.options["kl_weight"] * kl).mean()
        self.optimize(loss)
        return {"loss": loss.item()}

    @torch.no_grad()
    def eval_step(self, batch, metrics: list[str]) -> dict[str, Tensor]:
        images, labels = batch
        rec, kl, recon = self.terms(self.eval_model(), images, labels)
        out = self.image_eval(recon, images, rec + self.options["kl_weight"] * kl)
        return {**out, "kl": kl, "reconstruction": rec}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, labels: Tensor | None = None) -> Tensor:
        model = self.eval_model()
        (latent,) = self.input_shape("decoder", "z")
        z = torch.randn(n, latent, generator=generator, device=self.device)
        if self.conditional and labels is None:
            labels = torch.arange(n) % self.options["classes"]
        labels = labels.to(self.device) if labels is not None else None
        return self.decode(model, z, labels).float()

    @torch.no_grad()
    def reconstruct(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.terms(self.eval_model(), images, labels)[2]
