"""`diffusion`: a denoising diffusion model (Ho et al., 2020) trained to predict the noise.

Training draws t uniformly from [0, T), forms x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps and
minimises MSE(model(x_t, t), eps), with images mapped from [0, 1] to [-1, 1]. Sampling is a
recipe option, so DDIM (Song et al., 2021) reuses a DDPM checkpoint without retraining:
`sampler: ddpm` runs all T ancestral steps, `sampler: ddim` runs `steps` steps with `eta`
(0: deterministic given the seed). The network is the spec's one network, inputs `x` and `t`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.train.evaluation.diffusion import SAMPLERS, SCHEDULES, Schedule, make_betas, sample
from engine.train.procedures.generative import Generative
from engine.train.progress import Progress
from engine.train.registry import PROCEDURES


@PROCEDURES.register("diffusion")
class Diffusion(Generative):
    networks = "one"  # the noise predictor
    OPTIONS = {"timesteps": 1000, "schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02,
               "sampler": "ddpm", "steps": None, "eta": 0.0, "clip_x0": False}
    CHOICES = {"schedule": SCHEDULES, "sampler": SAMPLERS}

    def setup(self, total_steps: int) -> None:
        super().setup(total_steps)
        o = self.options
        betas = make_betas(o["schedule"], o["timesteps"], o["beta_start"], o["beta_end"])
        self.schedule = Schedule(betas).to(self.device)

    def noise_loss(self, model, images: Tensor, per_sample: bool = False) -> Tensor:
        x0 = images * 2 - 1
        t = torch.randint(0, self.schedule.timesteps, (len(x0),), device=x0.device)
        eps = torch.randn_like(x0)
        predicted = model(x=self.schedule.q_sample(x0, t, eps), t=t).float()
        if per_sample:
            return (predicted - eps).pow(2).flatten(1).mean(dim=1)
        return F.mse_loss(predicted, eps)

    def train_step(self, batch) -> dict[str, float]:
        images, _ = batch
        with self.autocast():
            loss = self.noise_loss(self.model, images)
        self.optimize(loss)
        return {"loss": loss.item()}

    @torch.no_grad()
    def eval_step(self, batch, metrics: list[str]) -> dict[str, Tensor]:
        images, _ = batch
        # t and eps drawn from a fixed generator: the validation loss is comparable per epoch
        state = torch.random.get_rng_state()
        torch.manual_seed(len(images))
        try:
            return {"loss": self.noise_loss(self.eval_model(), images, per_sample=True)}
        finally:
            torch.random.set_rng_state(state)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, labels: Tensor | None = None) -> Tensor:
        o, model = self.options, self.eval_model()
        steps = o["steps"] if o["sampler"] == "ddim" else None
        total = (steps or 50) if o["sampler"] == "ddim" else self.schedule.timesteps
        progress = Progress(total, f"{o['sampler']} sampling, {n} images", enabled=True)

        def predict(x_t: Tensor, t: Tensor) -> Tensor:
            with self.autocast():  # the recipe's amp: bfloat16 (CPU) or float16 (CUDA) network
                return model(x=x_t, t=t).float()

        x = sample(predict, self.schedule,
                   (n, *self.input_shape(self.network_name, "x")), sampler=o["sampler"],
                   steps=steps, eta=o["eta"], generator=generator, device=self.device,
                   progress=lambda i: progress.update(n), clip_x0=o["clip_x0"])
        progress.close()
        return ((x + 1) / 2).clamp(0, 1)

    @property
    def network_name(self) -> str:
        return next(iter(self.recipe.shaped.inputs))
