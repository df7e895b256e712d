"""`pix2pix`: conditional GAN image-to-image translation (Isola et al., CVPR 2017), mask -> image.

Networks `generator` (mask -> image) and `discriminator` (condition, image -> patch logits).
Batches are `(image [B, 1, S, S] in [0, 1], mask [B, S, S] long, 1 = membrane)` (the
`isbi_membrane` dataset): the mask becomes the condition image in [-1, 1] (membrane -1, black as
in the label PNGs; background +1), the target image is mapped to [-1, 1] too (the generator ends
in tanh) and back to [0, 1] for figures and metrics.

Per batch, as in the paper (section 3.3):
- D step: BCE-with-logits of D(c, y) against 1 and of D(c, G(c)) against 0, over the patch
  map, halved ("we divide the objective by 2 while optimizing D"). D always sees the condition
  with the image it judges, real or fake (the seed fed the fake image without its condition).
- G step: `adversarial` * BCE(D(c, G(c)), 1) + `l1` * |G(c) - y| (lambda = 100).
`adversarial: 0` is the paper's L1-only baseline: the discriminator is then not trained.

Optimizers `generator` and `discriminator`: the recipe's `optimizers:` entry of that name, else
its `optimizer:` (the paper: Adam, lr 2e-4, betas (0.5, 0.999)). The generator is evaluated in
eval mode (running batch-norm statistics, no dropout); the paper instead keeps dropout and
batch statistics at test time (its batch size 1 makes batch norm act as instance norm).

`engine eval` with `eval: {sample_metrics: [fcn_dice]}` gives the FCN-score (section 4.2): a
segmentation net trained on real images (recipe unet_membrane; option `judge`, a glob of its
checkpoint, newest match) segments the images generated from the held-out masks; its membrane
Dice and pixel accuracy against those masks are printed beside the same judge on the real
images (the ceiling) and on the output of an untrained generator (the floor). The FCN-score
rewards legible images, and an average painted by L1 alone is more legible than real EM: so
`texture_ratio` (the generated images' mean absolute Laplacian over the real images') says how
realistic the texture is beside it (1: as real images; the L1-only generator's is far below).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.compiler.ir import located_error
from engine.train.checkpoint import newest_match
from engine.train.evaluation.metrics import dice, high_frequency_energy, pixel_accuracy, psnr
from engine.train.procedures.generative import Generative
from engine.train.procedures.segment import heldout_pairs, mask_image
from engine.train.registry import PROCEDURES

JUDGE = "runs/unet_membrane-*/checkpoints/last.pt"
FIGURE_SIDE = 256  # held-out 512x512 sections are shown at this side


def to_signed(images: Tensor) -> Tensor:
    return images * 2 - 1


def to_unit(images: Tensor) -> Tensor:
    return ((images.float() + 1) / 2).clamp(0, 1)


def condition_of(masks: Tensor) -> Tensor:
    """Label maps [B, H, W] (1 = membrane) -> condition images [B, 1, H, W]: membrane -1, else +1."""
    return 1 - 2 * (masks == 1).float().unsqueeze(1)


def optimizer_config(recipe, name: str) -> dict:
    """The recipe's `optimizers: {name: ...}` entry, else its single `optimizer:` (a located
    error when it gives neither for this network)."""
    named = (recipe.get("optimizers") or {}).get(name) or recipe.get("optimizer")
    if named is None:
        raise located_error(
            f"procedure '{recipe['procedure']}' needs an optimizer for the {name}",
            recipe.doc.loc, "optimizers", f"add optimizers: {{{name}: {{name: adam, lr: 0.0002}}}} "
            "(or one `optimizer:` for every network)")
    return named


@PROCEDURES.register("pix2pix")
class Pix2Pix(Generative):
    OPTIONS = {"adversarial": 1.0, "l1": 100.0, "judge": JUDGE}
    ema_after = "generator"
    can_sample = False

    @property
    def adversarial(self) -> bool:
        return self.options["adversarial"] > 0

    def setup(self, total_steps: int) -> None:
        self.add_optimizer("generator", optimizer_config(self.recipe, "generator"),
                           self.network("generator"), total_steps)
        if self.adversarial:
            self.add_optimizer("discriminator", optimizer_config(self.recipe, "discriminator"),
                               self.network("discriminator"), total_steps)

    def d_logits(self, condition: Tensor, image: Tensor) -> Tensor:
        return self.network("discriminator", self.model)(condition=condition, image=image).float()

    @staticmethod
    def bce(logits: Tensor, real: bool) -> Tensor:
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)

    def train_step(self, batch) -> dict[str, float]:
        images, masks = batch
        condition, real = condition_of(masks), to_signed(images)
        with self.autocast():
            fake = self.network("generator", self.model)(condition).float()
        out = {}
        if self.adversarial:
            with self.autocast():
                d_loss = 0.5 * (self.bce(self.d_logits(condition, real), True)
                                + self.bce(self.d_logits(condition, fake.detach()), False))
            self.optimize(d_loss, "discriminator")
            out["d_loss"] = d_loss.item()
        l1 = (fake - real).abs().mean()
        loss = self.options["l1"] * l1
        if self.adversarial:
            discriminator = self.network("discriminator", self.model)
            discriminator.requires_grad_(False)  # G's step leaves D's gradients alone
            with self.autocast():
                g_adv = self.bce(self.d_logits(condition, fake), True)
            discriminator.requires_grad_(True)
            loss = loss + self.options["adversarial"] * g_adv
            out["g_adv"] = g_adv.item()
        self.optimize(loss, "generator")
        return {"loss": loss.item(), "l1": l1.item(), **out}

    @torch.no_grad()
    def translate(self, masks: Tensor, generator=None) -> Tensor:
        """Images in [0, 1] [B, 1, H, W] generated from label maps [B, H, W], one at a time."""
        generator = generator or self.network("generator", self.eval_model())
        out = []
        for mask in masks:
            with self.autocast():
                out.append(to_unit(generator(condition_of(mask[None].to(self.device)))).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def eval_step(self, batch, metrics: list) -> dict[str, Tensor]:
        images, masks = batch
        fake = self.translate(masks).to(images.device)
        return {"loss": (fake - images).abs().flatten(1).mean(1), "psnr": psnr(fake, images)}

    # ---- figures ----------------------------------------------------------------------------
    def sample_figure(self, run, n: int, output: str, seed: int) -> str:
        """One row per held-out section: its mask (input), the generated image, the real one."""
        from engine.train.evaluation.sampling import save_grid
        images, masks = heldout_pairs(run, "test", n)
        fake = self.translate(masks)
        rows = torch.stack([mask_image(masks), fake, images], dim=1).flatten(0, 1)
        if rows.shape[-1] > FIGURE_SIDE:
            rows = F.interpolate(rows, size=FIGURE_SIDE, mode="area")
        path = save_grid(rows, Path(output), 3)
        return (f"wrote {path}: {len(images)} held-out sections, each a row of input mask, "
                "generated image, real image")

    def judge_path(self) -> Path:
        return newest_match(
            self.options["judge"], self.recipe.doc.loc, "procedure.judge",
            "the FCN-score needs a trained segmentation net",
            "train it first (engine train recipes/unet_membrane.yaml), or --set "
            "procedure.judge=PATH/checkpoints/last.pt")

    def load_judge(self, run):
        """The segmentation net of the judge checkpoint, built from its run's recipe."""
        path = self.judge_path()
        return run.checkpoint_judge(path, "unet_membrane"), path

    @torch.no_grad()
    def segment(self, judge, images: Tensor) -> Tensor:
        out = []
        for image in images:
            with self.autocast():
                out.append(judge(image[None].to(self.device)).float().argmax(1).cpu())
        return torch.cat(out)

    def untrained_generator(self, seed: int):
        from engine.compiler.build import build
        torch.manual_seed(seed)
        return self.network("generator", build(self.recipe.shaped, device=str(self.device))).eval()

    def evaluate_samples(self, run, split: str, names: list[str], seed: int):
        if "fcn_dice" not in names:
            return {}, []
        judge, path = self.load_judge(run)
        images, masks = heldout_pairs(run, split)
        sources = {"": self.translate(masks), "_real": images,
                   "_untrained": self.translate(masks, self.untrained_generator(seed))}
        out: dict[str, float] = {"images": len(images)}
        real_texture = high_frequency_energy(images).mean()
        for suffix, pictures in sources.items():
            predicted = self.segment(judge, pictures)
            out[f"fcn_dice{suffix}"] = float(dice(predicted, masks).mean())
            out[f"fcn_pixel_accuracy{suffix}"] = float(pixel_accuracy(predicted, masks).mean())
            if suffix != "_real":  # realism beside legibility: texture against the real images'
                out[f"texture_ratio{suffix}"] = float(high_frequency_energy(pictures).mean() / real_texture)
        notes = [f"FCN-score judge: {path}; membrane Dice and pixel accuracy of its segmentation "
                 "of images generated from the held-out masks (fcn_*), of the real images "
                 "(_real: the ceiling) and of an untrained generator's output (_untrained: the "
                 "floor); texture_ratio*: the generated images' high-frequency energy (mean "
                 "absolute Laplacian) over the real images' (1: as textured as real EM; below 1: "
                 "smoother, as an average painted by L1 alone)"]
        return out, notes
