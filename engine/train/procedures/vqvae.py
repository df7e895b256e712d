"""`vqvae`: VQ-VAE (van den Oord et al., 2017) in its paper's two stages.

- `stage: autoencoder` trains `encoder` (with its codebook) and `decoder`:
  loss = MSE(reconstruction, x) + the quantiser's codebook and commitment loss (`vq_loss`).
- `stage: prior` freezes both (their batch norms in eval mode), encodes every image to its
  grid of code indices and trains the `prior` network (a PixelCNN) to predict each index from
  those before it in raster order, with cross-entropy. `autoencoder:` names the stage-1
  checkpoint (a glob picks the newest match); its weights are loaded before the first step.

Sampling (stage prior) fills the index grid one position at a time in raster order, each
drawn from the prior's softmax (`temperature`), then decodes the codebook vectors.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.blocks.latent import VectorQuantizer
from engine.compiler.ir import located_error
from engine.train.checkpoint import load_checkpoint, newest_match
from engine.train.evaluation.metrics import per_sample_loss
from engine.train.procedures.generative import Generative
from engine.train.registry import PROCEDURES

STAGES = ("autoencoder", "prior")


@PROCEDURES.register("vqvae")
class VQVAE(Generative):
    OPTIONS = {"stage": "autoencoder", "autoencoder": None, "temperature": 1.0}
    CHOICES = {"stage": STAGES}
    DEFAULT_LOSS = {"name": "mse"}
    can_reconstruct = True

    @property
    def prior_stage(self) -> bool:
        return self.options["stage"] == "prior"

    @property
    def can_sample(self) -> bool:
        return self.prior_stage

    def setup(self, total_steps: int) -> None:
        trained = self.network("prior") if self.prior_stage else torch.nn.ModuleList(
            [self.network("encoder"), self.network("decoder")])
        self.add_optimizer("model", self.recipe["optimizer"], trained, total_steps)
        if self.prior_stage:
            for name in ("encoder", "decoder"):
                self.network(name).requires_grad_(False)

    def train_mode(self) -> None:
        self.model.train()
        if self.prior_stage:  # the autoencoder is frozen: its batch norms keep their statistics
            self.network("encoder").eval()
            self.network("decoder").eval()

    def start_training(self) -> None:
        if not self.prior_stage:
            return
        path = self.autoencoder_checkpoint()
        weights = load_checkpoint(path)["procedure"]["model"]
        kept = {k: v for k, v in weights.items() if not k.startswith("prior.")}
        missing = self.unwrapped.load_state_dict(kept, strict=False).missing_keys
        if any(not k.startswith("prior.") for k in missing):
            raise located_error(f"{path} is not a checkpoint of this VQ-VAE (missing "
                                f"{missing[0]})", self.recipe.doc.loc,
                                "procedure.autoencoder", "train stage 1 of this spec")
        print(f"prior stage: autoencoder weights from {path}", flush=True)

    def autoencoder_checkpoint(self) -> Path:
        return newest_match(
            self.options["autoencoder"], self.recipe.doc.loc, "procedure.autoencoder",
            "the prior stage needs the stage-1 checkpoint",
            "train stage 1 first (engine train vqvae_mnist), then --set "
            "procedure.autoencoder=runs/vqvae_mnist-*/checkpoints/last.pt")

    # ---- the two losses ---------------------------------------------------------------------
    def autoencode(self, model, images: Tensor) -> tuple[Tensor, Tensor]:
        code = self.network("encoder", model)(images)
        return self.network("decoder", model)(code["quantized"]).float(), code["vq_loss"]

    def prior_logits(self, model, images: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            indices = self.network("encoder", model)(images)["indices"]
        return self.network("prior", model)(indices).float(), indices

    def train_step(self, batch) -> dict[str, float]:
        images, _ = batch
        with self.autocast():
            if self.prior_stage:
                logits, indices = self.prior_logits(self.model, images)
                loss = F.cross_entropy(logits, indices)
            else:
                recon, vq_loss = self.autoencode(self.model, images)
                loss = self.loss(recon, images) + vq_loss
        self.optimize(loss)
        return {"loss": loss.item()}

    @torch.no_grad()
    def eval_step(self, batch, metrics: list[str]) -> dict[str, Tensor]:
        images, _ = batch
        model = self.eval_model()
        if self.prior_stage:
            logits, indices = self.prior_logits(model, images)
            nats = F.cross_entropy(logits, indices, reduction="none").flatten(1).mean(dim=1)
            return {"loss": nats, "bits_per_code": nats / torch.log(torch.tensor(2.0))}
        recon, _ = self.autoencode(model, images)
        return self.image_eval(recon, images, per_sample_loss(self.loss, recon, images))

    # ---- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.autoencode(self.eval_model(), images)[0]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, labels: Tensor | None = None) -> Tensor:
        if not self.prior_stage:
            return super().sample(n, generator, labels)
        model = self.eval_model()
        prior = self.network("prior", model)
        height, width = self.input_shape("prior", "indices")
        grid = torch.zeros(n, height, width, dtype=torch.long, device=self.device)
        for i in range(height):
            for j in range(width):  # raster order: position (i, j) sees only those before it
                logits = prior(grid)[:, :, i, j].float() / self.options["temperature"]
                grid[:, i, j] = torch.multinomial(logits.softmax(dim=1), 1,
                                                  generator=generator)[:, 0]
        codebook = next(m for m in self.network("encoder", model).modules()
                        if isinstance(m, VectorQuantizer)).codebook
        codes = codebook(grid).permute(0, 3, 1, 2)
        return self.network("decoder", model)(codes).float()


