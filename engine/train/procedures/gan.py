"""`gan`: the adversarial family on one alternating loop, the loss a recipe choice.

Networks `generator` (inputs `z`, and `label` when class-conditional) and `discriminator`
(input `image`, and `label` for a conditional discriminator; output `score`). Each batch runs
`d_steps` discriminator updates, each with fresh z and the generated images detached, then
`g_steps` generator updates. Images are mapped to [-1, 1] (`pixels: signed`, for tanh
generators) or kept in [0, 1] (`pixels: unit`, InfoGAN's sigmoid).

- `objective`: `bce` (non-saturating), `least_squares`, `hinge`, `wasserstein`, or the
  energy-based `energy` (EBGAN: margin and pulling-away term) and `boundary_equilibrium`
  (BEGAN: the control variable k and the convergence measure M), whose discriminators are
  autoencoders with outputs `recon` and `code`. The losses are in `engine.train.losses.gan`.
- `penalty` (a Lipschitz constraint for `wasserstein`): `clip` (every discriminator parameter
  clamped to +-`clip_value` after each step), `gradient` (WGAN-GP, weight `gp_weight`) or
  `divergence` (WGAN-div, `div_k`, `div_p`); for any objective, `r1` (StyleGAN's gradient
  penalty on real images, weight `r1_gamma` / 2).
- `aux`: `acgan` (the discriminator's `classes` output learns the label of real and generated
  images; Odena et al., 2017) or `infogan` (a third network `q` reads the discriminator's
  `features` and recovers the categorical and continuous codes hidden in z; Chen et al., 2016).

Optimizers: `optimizers: {generator: ..., discriminator: ...}` in the recipe (TTUR, different
betas), else `optimizer` for both. InfoGAN's `q` is trained with the generator, as in its paper.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.compiler.ir import located_error
from engine.train.losses import gan as gan_losses
from engine.train.procedures.generative import Generative
from engine.train.registry import PROCEDURES

ENERGY_OBJECTIVES = ("energy", "boundary_equilibrium")


@PROCEDURES.register("gan")
class GAN(Generative):
    OPTIONS = {"objective": "bce", "penalty": "none", "aux": "none",
               "d_steps": 1, "g_steps": 1, "latent": "normal", "pixels": "signed",
               "fake_labels": "random", "reuse_fake": False, "classes": 10,
               "clip_value": 0.01, "gp_weight": 10.0, "div_k": 2.0, "div_p": 6.0, "r1_gamma": 10.0,
               "class_weight": 1.0, "info_categorical": 10, "info_continuous": 2,
               "info_cat_weight": 1.0, "info_cont_weight": 0.1,
               "margin": 1.0, "pt_weight": 0.1, "gamma": 0.5, "lambda_k": 0.001}
    CHOICES = {"objective": (*gan_losses.OBJECTIVES, *ENERGY_OBJECTIVES),
               "penalty": ("none", "clip", "gradient", "divergence", "r1"),
               "aux": ("none", "acgan", "infogan"), "latent": ("normal", "uniform"),
               "pixels": ("signed", "unit"), "fake_labels": ("random", "real")}
    tracks_best = False  # no validation loss tells a better generator
    ema_after = "generator"

    # ---- set-up -------------------------------------------------------------------------
    def setup(self, total_steps: int) -> None:
        generator = nn.ModuleList([self.network("generator")])
        if self.options["aux"] == "infogan":
            generator.append(self.network("q"))
        self.add_optimizer("generator", self._optimizer_cfg("generator"), generator, total_steps)
        self.add_optimizer("discriminator", self._optimizer_cfg("discriminator"),
                           self.network("discriminator"), total_steps)
        if self.takes(self.network("discriminator"), "label") and not self.conditional:
            # otherwise the generator step would judge its images with no label to give
            raise located_error(
                "the discriminator takes a `label` input but the generator does not",
                self.recipe.file, "spec", "a conditional discriminator needs a "
                "class-conditional generator: give the generator a `label` input too, or drop "
                "the discriminator's")
        self.k = 0.0  # BEGAN's equilibrium control variable
        self._began_real: float | None = None  # L(x) of the last discriminator step

    def _optimizer_cfg(self, name: str) -> dict:
        named = self.recipe.get("optimizers") or {}
        if name in named:
            return named[name]
        if self.recipe.get("optimizer") is None:
            raise located_error(
                f"the gan procedure needs an optimizer for the {name}", self.recipe.file,
                "optimizers", f"add optimizers: {{{name}: {{name: adam, lr: 0.0002}}}}")
        return self.recipe["optimizer"]

    @property
    def conditional(self) -> bool:
        return self.takes(self.network("generator"), "label")

    @property
    def energy_based(self) -> bool:
        return self.options["objective"] in ENERGY_OBJECTIVES

    # ---- the two networks ---------------------------------------------------------------
    def latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        (width,) = self.input_shape("generator", "z")
        shape = (n, width)
        if self.options["latent"] == "uniform":
            return torch.rand(shape, generator=generator, device=self.device) * 2 - 1
        return torch.randn(shape, generator=generator, device=self.device)

    def train_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z for a batch: InfoGAN's ends with a random one-hot code and U(-1, 1) codes."""
        if not self.has_codes:
            return self.latent(n, generator)
        cat, cont = self.options["info_categorical"], self.options["info_continuous"]
        categories = torch.randint(0, cat, (n,), generator=generator, device=self.device)
        codes = torch.rand(n, cont, generator=generator, device=self.device) * 2 - 1
        return self.info_latent(categories, codes, generator)

    @property
    def has_codes(self) -> bool:
        return self.options["aux"] == "infogan"

    def fake_labels(self, labels: Tensor) -> Tensor | None:
        if not self.conditional:
            return None
        if self.options["fake_labels"] == "real":
            return labels
        return torch.randint(0, self.options["classes"], labels.shape, device=labels.device)

    def generate(self, model, z: Tensor, labels: Tensor | None) -> Tensor:
        generator = self.network("generator", model)
        return generator(z=z, label=labels) if labels is not None else generator(z)

    def judge(self, images: Tensor, labels: Tensor | None) -> dict[str, Tensor]:
        discriminator = self.network("discriminator")
        if self.takes(discriminator, "label"):
            out = discriminator(image=images, label=labels)
        else:
            out = discriminator(images)
        return out if isinstance(out, dict) else {"score": out}

    def critic(self, labels: Tensor | None):
        """The discriminator's score as a function of the images alone (for the penalties)."""
        return lambda images: self.judge(images, labels)["score"].float()

    # ---- one batch ----------------------------------------------------------------------
    def train_step(self, batch) -> dict[str, float]:
        images, labels = batch
        real = images * 2 - 1 if self.options["pixels"] == "signed" else images
        logs: dict[str, float] = {}
        for _ in range(self.options["d_steps"]):
            z, fake_labels = self.train_latent(len(real)), self.fake_labels(labels)
            with self.autocast():
                loss, terms = self.discriminator_loss(real, labels, z, fake_labels)
            self.optimize(loss, "discriminator")
            self.after_discriminator_step()
            logs.update(d_loss=loss.item(), **terms)
        for _ in range(self.options["g_steps"]):
            if not self.options["reuse_fake"]:
                z, fake_labels = self.train_latent(len(real)), self.fake_labels(labels)
            with self.autocast():
                loss, terms = self.generator_loss(real, z, fake_labels)
            self.optimize(loss, "generator")
            logs.update(loss=loss.item(), **terms)
        return logs

    def after_discriminator_step(self) -> None:
        if self.options["penalty"] == "clip":  # WGAN: a compact set of critics (Lipschitz)
            c = self.options["clip_value"]
            with torch.no_grad():
                for p in self.network("discriminator").parameters():
                    p.clamp_(-c, c)

    def discriminator_loss(self, real: Tensor, labels: Tensor, z: Tensor,
                           fake_labels: Tensor | None) -> tuple[Tensor, dict]:
        with torch.no_grad():
            fake = self.generate(self.model, z, fake_labels)
        d_labels = fake_labels if fake_labels is not None else labels
        on_real, on_fake = self.judge(real, labels), self.judge(fake, d_labels)
        if self.energy_based:
            return self.energy_d_loss(real, fake, on_real, on_fake)
        o = self.options
        loss = gan_losses.d_loss(o["objective"], on_real["score"].float(),
                                 on_fake["score"].float())
        terms = {}
        if o["penalty"] == "gradient":
            gp = gan_losses.gradient_penalty(self.critic(labels), real, fake)
            loss, terms["gradient_penalty"] = loss + o["gp_weight"] * gp, gp.item()
        elif o["penalty"] == "r1":
            r1 = gan_losses.r1_penalty(self.critic(labels), real)
            loss, terms["r1_penalty"] = loss + o["r1_gamma"] / 2 * r1, r1.item()
        elif o["penalty"] == "divergence":
            div = gan_losses.divergence_penalty(self.critic(labels), real, fake,
                                                o["div_k"], o["div_p"])
            loss, terms["divergence_penalty"] = loss + div, div.item()
        if o["aux"] == "acgan":
            ce = F.cross_entropy(on_real["classes"].float(), labels) + \
                F.cross_entropy(on_fake["classes"].float(), fake_labels)
            loss, terms["d_class_loss"] = loss + o["class_weight"] * ce, ce.item()
        return loss, terms

    def generator_loss(self, real: Tensor, z: Tensor,
                       fake_labels: Tensor | None) -> tuple[Tensor, dict]:
        fake = self.generate(self.model, z, fake_labels)
        on_fake = self.judge(fake, fake_labels)
        if self.energy_based:
            return self.energy_g_loss(real, fake, on_fake)
        o = self.options
        loss = gan_losses.g_loss(o["objective"], on_fake["score"].float())
        terms = {}
        if o["aux"] == "acgan":
            ce = F.cross_entropy(on_fake["classes"].float(), fake_labels)
            loss, terms["g_class_loss"] = loss + o["class_weight"] * ce, ce.item()
        if o["aux"] == "infogan":
            info = self.information_loss(z, on_fake["features"])
            loss, terms["information_loss"] = loss + info, info.item()
        return loss, terms

    # ---- energy-based discriminators (autoencoders) -------------------------------------
    def energy_d_loss(self, real, fake, on_real, on_fake) -> tuple[Tensor, dict]:
        o = self.options
        if o["objective"] == "energy":  # EBGAN: D(x) + [m - D(G(z))]^+
            e_real = gan_losses.energy(on_real["recon"], real).mean()
            e_fake = gan_losses.energy(on_fake["recon"], fake).mean()
            return e_real + F.relu(o["margin"] - e_fake), {"energy_real": e_real.item()}
        l_real = gan_losses.l1_energy(on_real["recon"], real).mean()
        l_fake = gan_losses.l1_energy(on_fake["recon"], fake).mean()
        self._began_real = l_real.item()  # for the k update after the generator step
        return l_real - self.k * l_fake, {"energy_real": l_real.item()}

    def energy_g_loss(self, real, fake, on_fake) -> tuple[Tensor, dict]:
        o = self.options
        if o["objective"] == "energy":  # EBGAN: D(G(z)) + pulling-away term on the codes
            e_fake = gan_losses.energy(on_fake["recon"], fake).mean()
            pt = gan_losses.pull_away(on_fake["code"])
            return e_fake + o["pt_weight"] * pt, {"pull_away": pt.item()}
        l_fake = gan_losses.l1_energy(on_fake["recon"], fake).mean()
        l_real = self._began_real if self._began_real is not None else l_fake.item()
        balance = o["gamma"] * l_real - l_fake.item()
        self.k = min(max(self.k + o["lambda_k"] * balance, 0.0), 1.0)
        return l_fake, {"k": self.k, "convergence": l_real + abs(balance)}

    # ---- InfoGAN's codes ----------------------------------------------------------------
    def split_codes(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z ends with the one-hot categorical code and the continuous codes."""
        cat, cont = self.options["info_categorical"], self.options["info_continuous"]
        return z[:, -cat - cont:-cont].argmax(1), z[:, -cont:]

    def information_loss(self, z: Tensor, features: Tensor) -> Tensor:
        """-log Q(c | G(z)): cross-entropy of the categorical code plus the Gaussian negative
        log-likelihood of the continuous codes under Q's mean and log-variance."""
        o = self.options
        codes = self.network("q")(features).float()
        cat, cont = o["info_categorical"], o["info_continuous"]
        target_cat, target_cont = self.split_codes(z)
        mean, logvar = codes[:, cat:cat + cont], codes[:, cat + cont:cat + 2 * cont]
        nll = 0.5 * (logvar + (target_cont - mean).pow(2) / logvar.exp() + math.log(2 * math.pi))
        return o["info_cat_weight"] * F.cross_entropy(codes[:, :cat], target_cat) + \
            o["info_cont_weight"] * nll.sum(1).mean()

    def info_latent(self, categories: Tensor, continuous: Tensor,
                    generator: torch.Generator | None = None) -> Tensor:
        noise = self.latent(len(categories), generator)
        cat, cont = self.options["info_categorical"], self.options["info_continuous"]
        noise = noise[:, :noise.shape[1] - cat - cont]
        one_hot = F.one_hot(categories.to(self.device), cat).float()
        return torch.cat([noise, one_hot, continuous.to(self.device)], dim=1)

    # ---- evaluation and sampling --------------------------------------------------------
    @torch.no_grad()
    def eval_step(self, batch, metrics: list[str]) -> dict[str, Tensor]:
        """The discriminator's mean score on held-out real images (a health check: it falls
        when the discriminator overfits the training images); GAN losses pick no best epoch."""
        images, labels = batch
        real = images * 2 - 1 if self.options["pixels"] == "signed" else images
        out = self.judge(real, labels)
        if self.energy_based:
            return {"real_energy": gan_losses.l1_energy(out["recon"], real)}
        return {"real_score": out["score"].float().flatten(1).mean(1)}

    def to_unit(self, images: Tensor) -> Tensor:
        images = images.float()
        if self.options["pixels"] == "signed":
            images = (images + 1) / 2
        return images.clamp(0, 1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, labels: Tensor | None = None) -> Tensor:
        model = self.eval_model()
        z = self.train_latent(n, generator)
        if self.conditional and labels is None:
            labels = torch.arange(n) % self.options["classes"]
        labels = labels.to(self.device) if labels is not None and self.conditional else None
        return self.to_unit(self.generate(model, z, labels))

    @torch.no_grad()
    def coded_samples(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """InfoGAN samples with their categorical codes (cycling 0..K-1), for code_agreement."""
        categories = torch.arange(n, device=self.device) % self.options["info_categorical"]
        codes = torch.rand(n, self.options["info_continuous"], generator=generator,
                           device=self.device) * 2 - 1
        z = self.info_latent(categories, codes, generator)
        return self.to_unit(self.generate(self.eval_model(), z, None)).cpu(), categories.cpu()

    def sample_figure(self, run, n: int, output: str, seed: int) -> str | None:
        """InfoGAN: one traversal grid per continuous code (rows: the categorical code 0..K-1;
        columns: that code from -1 to 1, the others 0; one noise vector per row), as in the
        paper's figure 2. A style-based generator (StyleGAN) adds its style-mixing and
        truncation grids. Other GANs draw the usual grid (None)."""
        if not self.has_codes:
            from engine.train.evaluation.style_grids import style_figures
            return style_figures(self, run, n, output, seed)
        from engine.train.evaluation.sampling import generator_for, save_grid
        cat, cont = self.options["info_categorical"], self.options["info_continuous"]
        steps, generator = 10, generator_for(run, seed)
        noise = self.latent(cat, generator).repeat_interleave(steps, 0)
        categories = torch.arange(cat).repeat_interleave(steps)
        sweep = torch.linspace(-1, 1, steps).repeat(cat)
        written = []
        for k in range(cont):
            codes = torch.zeros(cat * steps, cont)
            codes[:, k] = sweep
            z = self.info_latent(categories, codes)
            z[:, :noise.shape[1] - cat - cont] = noise[:, :noise.shape[1] - cat - cont]
            path = _numbered(output, k) if k else output
            images = self.to_unit(self.generate(self.eval_model(), z, None)).cpu()
            written.append(str(save_grid(images, path, steps)))
        return (f"wrote {', '.join(written)}: rows = categorical code 0..{cat - 1}, columns = "
                f"continuous code c1..c{cont} (one file each) from -1 to 1")

    def state_dict(self) -> dict:
        return {**super().state_dict(), "k": self.k}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.k = state.get("k", 0.0)


def _numbered(path: str, k: int) -> str:
    """grid.png, k=1 -> grid_c2.png."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}_c{k + 1}{p.suffix}"))
