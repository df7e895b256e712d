"""`srgan`: SRGAN's adversarial phase (Ledig et al., "Photo-Realistic Single Image
Super-Resolution Using a Generative Adversarial Network", CVPR 2017).

Networks `generator` (SRResNet, on the LR image) and `discriminator` (HR image -> one logit), as
in specs/srgan.yaml. Phase 1 pre-trains the generator alone with MSE (procedure `super_resolve`,
`network: generator`, recipe srresnet_x4); this procedure is phase 2. Per batch (`lr`, `hr` in
[0, 1], from `sr_patches`; the HR patch side must be the discriminator's input side, `hr_size`):

- D step: BCE-with-logits of D(hr) against 1 and of D(G(lr)) (detached) against 0, summed
  (`engine.train.losses.gan.d_loss("bce", ...)`).
- G step: content + `adversarial` x the non-saturating BCE -log D(G(lr)) (paper: 1e-3), with the
  discriminator's weights left out of this step's gradients.

Options:
- `content`: `vgg` (the paper's VGG54) or `pixel` (the MSE of the pixels: the documented offline
  substitute, the paper's SRGAN-MSE). VGG54 is the MSE between the feature maps phi_5,4 (after
  the 4th convolution and its ReLU, before the 5th max-pool: torchvision's
  `vgg19(weights=IMAGENET1K_V1).features[:36]`) of the SR and the HR image, each normalised with
  ImageNet's mean and std and its features multiplied by `vgg_rescale` (default 1/12.75, as the
  paper): the loss is vgg_rescale^2 x the mean squared feature difference. The frozen VGG is not
  part of the model (not saved, not optimised); its weights come from torch's hub cache (or are
  downloaded there), else a located error says how to go on offline.
- `adversarial` (default 1e-3): the weight of the generator's adversarial loss.
- `generator_checkpoint` (default null: start from scratch, with a printed note): a path or glob
  (newest match) of a phase-1 checkpoint; its generator weights (its EMA copy where it kept one)
  initialise the generator before the first step of a fresh run.
- `scale`: as super_resolve's.

Optimizers `generator` and `discriminator`: the recipe's `optimizers:` entry of that name, else
its `optimizer:` (the paper: Adam, lr 1e-4). Evaluation, `engine infer` and `engine sample` are
super_resolve's, on the generator (validation PSNR/SSIM on Y beside bicubic). No best.pt: PSNR
favours the blurry MSE solution the adversarial loss moves away from (the paper's SRGAN scores
below its SRResNet in PSNR), so the runs keep last.pt.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.compiler.ir import located_error
from engine.train.checkpoint import load_checkpoint, newest_match, trained_weights
from engine.train.losses import gan as gan_losses
from engine.train.procedures.pix2pix import optimizer_config
from engine.train.procedures.super_resolve import SuperResolve
from engine.train.registry import PROCEDURES

VGG54 = 36  # vgg19().features[:36]: through conv5_4's ReLU (index 35), before max-pool 5 (36)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PHASE1 = "runs/srresnet_x4-*/checkpoints/best.pt"


def vgg54(device: torch.device, where: str) -> nn.Module:
    """VGG19's phi_5,4 feature extractor with ImageNet weights, frozen and in eval mode, or a
    error (at `where`, the recipe file) when the weights are neither in torch's hub cache nor
    downloadable."""
    import torchvision.models as models

    weights = models.VGG19_Weights.IMAGENET1K_V1
    try:
        vgg = models.vgg19(weights=weights)
    except (OSError, RuntimeError) as err:  # offline (URLError is an OSError), or a broken file
        checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
        file = weights.url.rsplit("/", 1)[-1]
        raise located_error(
            f"srgan: content: vgg needs VGG19's ImageNet weights, which cannot be obtained "
            f"({str(err).strip().splitlines()[0][:200]}): no internet and no {file} in "
            f"{checkpoints}", where, "procedure.content", f"set procedure.content=pixel (MSE on "
            f"pixels, the offline substitute), or put {file} (from {weights.url}) in {checkpoints}/"
        ) from None
    return vgg.features[:VGG54].to(device).eval().requires_grad_(False)


def imagenet_normalised(images: Tensor) -> Tensor:
    """Images [B, 3, H, W] in [0, 1] -> normalised as torchvision's ImageNet models expect."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def generator_weights(state: dict) -> dict[str, Tensor]:
    """A checkpoint's procedure state -> its generator's weights (`generator.` stripped): the
    EMA copy where the run kept one (what it evaluated), else the trained weights."""
    return {k.removeprefix("generator."): v for k, v in trained_weights(state).items()
            if k.startswith("generator.")}


@PROCEDURES.register("srgan")
class SRGAN(SuperResolve):
    OPTIONS = {"content": "vgg", "vgg_rescale": 1 / 12.75, "adversarial": 1e-3,
               "generator_checkpoint": None, "scale": None}
    CHOICES = {"content": ("vgg", "pixel")}
    ema_after = "generator"
    # super_resolve's options that SRGAN fixes: the generator reads the LR image, one output
    FIXED = {"network": "generator", "upscaled_input": False, "recursive_alpha": 0.0,
             "y_only": False}
    tracks_best = False  # see the module docstring: last.pt, not the best PSNR

    def setup(self, total_steps: int) -> None:
        self.options = {**self.options, **self.FIXED}
        self._vgg: nn.Module | None = None  # loaded on the first VGG content loss
        super().setup(total_steps)

    def add_optimizers(self, total_steps: int) -> None:
        for name in ("generator", "discriminator"):
            self.add_optimizer(name, optimizer_config(self.recipe, name), self.network(name),
                               total_steps)

    def network(self, name: str, model: nn.Module | None = None) -> nn.Module:
        """The spec's network `name` of `model` (default: the unwrapped model)."""
        model = self.unwrapped if model is None else model
        if isinstance(model, nn.ModuleDict) and name in model:
            return model[name]
        have = ", ".join(model) if isinstance(model, nn.ModuleDict) else "one network"
        raise located_error(f"srgan needs networks generator and discriminator; the spec has {have}",
                            self.recipe.file, "spec",
                            "use spec: srgan (networks: {generator: ..., discriminator: ...})")

    def sr_network(self, model: nn.Module | None = None) -> nn.Module:
        return self.network("generator", model)

    # ---- phase 1's generator ----------------------------------------------------------------
    def start_training(self) -> None:
        if self.options["generator_checkpoint"] is None:
            print("srgan: no generator_checkpoint, the generator starts from scratch (the paper "
                  "starts from a trained SRResNet: engine train recipes/srresnet_x4.yaml)",
                  flush=True)
            return
        path = newest_match(
            self.options["generator_checkpoint"], self.recipe.doc.loc,
            "procedure.generator_checkpoint", "srgan starts from a phase-1 (SRResNet) checkpoint",
            f"train phase 1 first (engine train recipes/srresnet_x4.yaml; {PHASE1}), or --set "
            "procedure.generator_checkpoint=null to start from scratch")
        self.load_generator(path)
        print(f"srgan: generator weights from {path}", flush=True)

    def load_generator(self, path: Path) -> None:
        """Initialise the generator (and its EMA copy) from a phase-1 checkpoint."""
        weights = generator_weights(load_checkpoint(path)["procedure"])
        hint = ("give a checkpoint of phase 1 (recipes/srresnet_x4.yaml: super_resolve with "
                "network: generator) trained with this recipe's spec settings (spec.set)")
        if not weights:
            raise located_error(f"{path} holds no generator weights (no 'generator.' entries)",
                                path, "procedure.generator_checkpoint", hint)
        try:
            self.network("generator").load_state_dict(weights)
        except RuntimeError as err:  # other spec settings: missing keys or other shapes
            detail = " ".join(str(err).strip().splitlines()[:2])[:300]
            raise located_error(f"{path} does not fit this generator: {detail}", path,
                                "procedure.generator_checkpoint", hint) from None
        if self.ema is not None:
            self.network("generator", self.ema.module).load_state_dict(weights)

    # ---- the losses ---------------------------------------------------------------------------
    @property
    def vgg(self) -> nn.Module:
        if self._vgg is None:
            self._vgg = vgg54(self.device, self.recipe.file)
        return self._vgg

    def vgg_features(self, images: Tensor) -> Tensor:
        """phi_5,4 of images in [0, 1], times `vgg_rescale` (float)."""
        with self.autocast():
            features = self.vgg(imagenet_normalised(images))
        return features.float() * self.options["vgg_rescale"]

    def content_loss(self, sr: Tensor, hr: Tensor) -> Tensor:
        if self.options["content"] == "pixel":
            return F.mse_loss(sr, hr)
        with torch.no_grad():
            target = self.vgg_features(hr)
        return F.mse_loss(self.vgg_features(sr), target)

    def d_logits(self, images: Tensor) -> Tensor:
        side = self.recipe.shaped.inputs["discriminator"]["image"].shape[-1]
        if images.shape[-1] != side or images.shape[-2] != side:
            raise located_error(f"srgan: the discriminator takes {side}x{side} HR patches, the batch "
                                f"has {images.shape[-2]}x{images.shape[-1]}", self.recipe.file,
                                "data.args.patch",
                                f"set data.args.patch: {side} (or spec.set hr_size to the patch side)")
        with self.autocast():
            return self.network("discriminator", self.model)(images).float()

    def discriminator_step(self, hr: Tensor, sr: Tensor) -> float:
        loss = gan_losses.d_loss("bce", self.d_logits(hr), self.d_logits(sr.detach()))
        self.optimize(loss, "discriminator")
        return loss.item()

    def adversarial_loss(self, sr: Tensor) -> Tensor:
        discriminator = self.network("discriminator", self.model)
        discriminator.requires_grad_(False)  # G's step leaves D's gradients alone
        loss = gan_losses.g_loss("bce", self.d_logits(sr))
        discriminator.requires_grad_(True)
        return loss

    def train_step(self, batch) -> dict[str, float]:
        lr, hr = batch
        sr, _ = self.forward(self.model, lr, self.scale_of(lr, hr))
        d_loss = self.discriminator_step(hr, sr)
        content, adversarial = self.content_loss(sr, hr), self.adversarial_loss(sr)
        loss = content + self.options["adversarial"] * adversarial
        self.optimize(loss, "generator")
        self.steps_done += 1
        return {"loss": loss.item(), "content": content.item(), "g_adv": adversarial.item(),
                "d_loss": d_loss}
