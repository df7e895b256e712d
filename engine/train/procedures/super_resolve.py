"""`super_resolve`: single-image super-resolution (SRCNN, ESPCN, VDSR, DRCN, DRRN, EDSR, SRResNet).

Batches are `(lr [B, C, h, w], hr [B, C, h*s, w*s])` in [0, 1] (datasets `sr_patches`,
`sr_benchmark`). The network sees the LR image, or with `upscaled_input: true` (SRCNN, VDSR,
DRCN, DRRN) its bicubic upscale by the scale s (torch `F.interpolate(mode="bicubic",
align_corners=False)`, clamped to [0, 1]). It gives the HR estimate: a tensor, or a dict whose
output `image` (else its first output) is the estimate; a dict output `steps` [B, D, C, H, W]
(DRCN's D intermediate predictions) is used for recursive supervision.

Options:
- `network` (default null: the model itself): the network of a `networks:` spec that
  super-resolves, e.g. `generator` to pre-train SRGAN's SRResNet (phase 1; phase 2 is the `srgan`
  procedure). Only that network is optimised, evaluated and used by `engine infer`/`sample`; the
  others stay as built (they are still saved in the checkpoints).
- `upscaled_input` (default false): upscale the LR image by bicubic interpolation first.
- `scale` (default null: hr side // lr side of each batch; `engine infer` reads the recipe's
  `data.args.scale`).
- `y_only` (default false): the network sees and predicts the luma Y alone (a spec with
  `channels: 1`), as the SRCNN, VDSR, DRCN and DRRN papers train; the loss is on Y, and the
  RGB output joins the predicted Y to the chroma (Cb, Cr) of the bicubic upscale.
- `recursive_alpha` (default 0; DRCN paper: 1): loss = a_t * mean over the D `steps` of their
  losses + (1 - a_t) * the final output's loss, a_t decaying linearly from `recursive_alpha` to 0
  over the first half of training (the paper decays alpha during training; its weight-decay term
  is the optimizer's `weight_decay` here). Only used when the model returns `steps`.

The loss is the recipe's (`loss: {name: mse}`, the default, or `l1` as EDSR) of the network output
against hr. Evaluation, per image as SR papers average: `loss`, `psnr_y` and `ssim_y` (BT.601 luma,
`border` = the scale cropped from each side, the output clamped to [0, 1] and rounded to 1/255 as
a saved image) and the same for the bicubic upscale of the LR image (`bicubic_psnr_y`,
`bicubic_ssim_y`: the baseline, by the same torch bicubic as `upscaled_input`, clamped and
rounded), and `checkerboard` (the output's share of Y spectrum power at the x-scale grid's
periods over the ground truth's: 1 is as periodic as the real image; sub-pixel artefacts give
many times more). `best.pt` is the checkpoint of the best validation `psnr_y` (`best_metric`).

Multi-scale training (`sr_patches` with `scale: [2, 3, 4]`, VDSR's and DRRN's): the pairs come
with the LR already upscaled to the HR size, so the scale of a batch reads as 1 and the bicubic
upscale by 1 is the identity; validation then crops a 1-pixel border. Evaluate each scale on
`sr_benchmark` (`data.args.scale: 3`), whose pairs are true LR / HR.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import Tensor, nn

from engine.compiler.ir import located_error
from engine.train.data.sr import upscale_bicubic as bicubic_upscale
from engine.train.evaluation.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from engine.train.evaluation.sr_metrics import checkerboard_y, psnr_y, ssim_y
from engine.train.procedures.base import Procedure
from engine.train.registry import PROCEDURES

FIGURE_CROP = 128  # the before/after picture shows a centre crop of at most this HR side


def as_saved(images: Tensor) -> Tensor:
    """Images clamped to [0, 1] and rounded to 1/255, as a written 8-bit image would hold them."""
    return (images.float().clamp(0, 1) * 255).round() / 255


def centre_crop(images: Tensor, side: int) -> Tensor:
    h, w = images.shape[-2:]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return images[..., top:top + side, left:left + side]


@PROCEDURES.register("super_resolve")
class SuperResolve(Procedure):
    networks = "any"  # a network, or an SRGAN spec's generator
    OPTIONS = {"network": None, "upscaled_input": False, "scale": None, "recursive_alpha": 0.0,
               "y_only": False}
    DEFAULT_LOSS = {"name": "mse"}
    reports_accuracy = False
    best_metric = "psnr_y"  # best.pt: the highest validation PSNR (runner.track_best)

    def setup(self, total_steps: int) -> None:
        self.check_y_only()
        self.add_optimizers(total_steps)
        self.total_steps, self.steps_done = total_steps, 0
        self.per_sample_loss = copy.copy(self.loss)
        self.per_sample_loss.reduction = "none"

    def add_optimizers(self, total_steps: int) -> None:
        """One optimizer, "model", over the super-resolving network alone."""
        self.add_optimizer("model", self.recipe["optimizer"], self.sr_network(), total_steps)

    # ---- the network ----------------------------------------------------------------------
    def sr_network(self, model: nn.Module | None = None) -> nn.Module:
        """The network that super-resolves: `model` (default: the unwrapped model) itself, or
        its network named by the `network` option; a located error when they do not match."""
        model = self.unwrapped if model is None else model
        name, procedure = self.options["network"], self.recipe["procedure"]
        if isinstance(model, nn.ModuleDict):
            if name in model:
                return model[name]
            have = ", ".join(model)
            found = f"none is named '{name}'" if name else "procedure.network picks none"
            raise located_error(f"{procedure}: the spec has networks {have}; {found}", self.recipe.file,
                                "procedure.network",
                                f"set procedure.network to the one that super-resolves: one of {have}")
        if name is not None:
            raise located_error(f"{procedure}: procedure.network is '{name}' but the spec has one network",
                                self.recipe.file, "procedure.network",
                                "leave out procedure.network (null: the model itself)")
        return model

    def scale_of(self, lr: Tensor, hr: Tensor | None = None) -> int:
        if self.options["scale"]:
            return int(self.options["scale"])
        if hr is None:
            raise ValueError("super_resolve: the scale is unknown (set procedure.scale)")
        if hr.shape[-1] == lr.shape[-1] and not self.options["upscaled_input"]:
            raise located_error("super_resolve: the inputs come at the HR size (multi-scale `sr_patches`, "
                                "`scale: [...]`), which only networks on the bicubic upscale can take",
                                self.recipe.file, "procedure.upscaled_input",
                                "set `upscaled_input: true` for such a network, or "
                                "train one scale (`data.args.scale: 2`)")
        # multi-scale pairs come upscaled already: 1, and the bicubic upscale by 1 is the identity
        return hr.shape[-1] // lr.shape[-1]

    def forward(self, model, lr: Tensor, scale: int) -> tuple[Tensor, Tensor | None]:
        """The network's HR estimate [B, C, H, W] (float) and its `steps` (or None)."""
        x = bicubic_upscale(lr, scale) if self.options["upscaled_input"] else lr
        if self.options["y_only"]:
            x = rgb_to_y(x)
        with self.autocast():
            out = self.sr_network(model)(x)
        steps = None
        if isinstance(out, dict):
            steps = out.get("steps")
            image = out["image"] if "image" in out else next(v for k, v in out.items() if k != "steps")
        else:
            image = out
        return image.float(), (steps.float() if steps is not None else None)

    def check_y_only(self) -> None:
        """With `y_only`, the network must take one channel (the luma): a located error else."""
        if not self.options["y_only"]:
            return
        self.sr_network()  # a wrong `network` gets its own error first
        inputs = self.recipe.shaped.inputs
        name = self.options["network"] or next(iter(inputs))
        channels = next(iter(inputs[name].values())).shape[1]
        if channels != 1:
            raise located_error(f"super_resolve: y_only needs a network on one channel (the luma Y); "
                                f"this one takes {channels}", self.recipe.file, "procedure.y_only",
                                "set the spec's channels to 1 (spec: {name: ..., set: {channels: 1}})")

    def target(self, hr: Tensor) -> Tensor:
        """What the network's output is compared with: hr, or its luma with `y_only`."""
        return rgb_to_y(hr) if self.options["y_only"] else hr

    def as_rgb(self, image: Tensor, lr: Tensor, scale: int) -> Tensor:
        """The network's output as an RGB image: itself, or with `y_only` its luma joined to
        the chroma (Cb, Cr) of the bicubic upscale, as the papers that train on Y do."""
        if not self.options["y_only"]:
            return image
        ycbcr = rgb_to_ycbcr(bicubic_upscale(lr.to(image.device), scale))
        return ycbcr_to_rgb(torch.cat([image, ycbcr[:, 1:]], dim=1))

    def alpha(self) -> float:
        """The recursive-supervision weight now: linear from `recursive_alpha` to 0 over the
        first half of training."""
        half = max(self.total_steps / 2, 1)
        return float(self.options["recursive_alpha"]) * max(0.0, 1 - self.steps_done / half)

    def objective(self, image: Tensor, steps: Tensor | None, hr: Tensor) -> Tensor:
        loss = self.loss(image, hr)
        a = self.alpha() if steps is not None else 0.0
        if a > 0:
            # mean-reduced over [B, D, C, H, W]: the mean over the D predictions of their losses
            loss = a * self.loss(steps, hr.unsqueeze(1).expand_as(steps)) + (1 - a) * loss
        return loss

    def train_step(self, batch) -> dict[str, float]:
        lr, hr = batch
        image, steps = self.forward(self.model, lr, self.scale_of(lr, hr))
        loss = self.objective(image, steps, self.target(hr))
        self.optimize(loss)
        self.steps_done += 1
        return {"loss": loss.item()}

    @torch.no_grad()
    def eval_step(self, batch, metrics: list) -> dict[str, Tensor]:
        lr, hr = batch
        scale = self.scale_of(lr, hr)
        image, _ = self.forward(self.eval_model(), lr, scale)
        per_sample = self.per_sample_loss(image, self.target(hr)).flatten(1).mean(1)
        out, bicubic = as_saved(self.as_rgb(image, lr, scale)), as_saved(bicubic_upscale(lr, scale))
        return {"loss": per_sample,
                "psnr_y": psnr_y(out, hr, border=scale), "ssim_y": ssim_y(out, hr, border=scale),
                "bicubic_psnr_y": psnr_y(bicubic, hr, border=scale),
                "bicubic_ssim_y": ssim_y(bicubic, hr, border=scale),
                "checkerboard": checkerboard_y(out, hr, scale, border=scale)}

    @torch.no_grad()
    def upscale(self, lr: Tensor, scale: int) -> Tensor:
        """LR images [B, C, h, w] in [0, 1] -> the network's HR images, clamped and rounded."""
        model = self.eval_model()
        model.eval()
        lr = lr.to(self.device)
        return as_saved(self.as_rgb(self.forward(model, lr, scale)[0], lr, scale)).cpu()

    # ---- checkpoints (the step count drives the recursive-supervision decay) ----------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "steps_done": self.steps_done}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.steps_done = state.get("steps_done", 0)

    # ---- the command line -----------------------------------------------------------------
    def recipe_scale(self, run) -> int:
        if self.options["scale"]:
            return int(self.options["scale"])
        scale = (run.recipe["data"].get("args") or {}).get("scale")
        if isinstance(scale, list):
            raise located_error(f"super_resolve: the recipe trains several scales {scale}",
                                run.recipe.file, hint="choose one with --set procedure.scale=S")
        if not isinstance(scale, int) or isinstance(scale, bool):
            raise located_error("super_resolve: the recipe gives no scale", run.recipe.file,
                                hint="set data.args.scale (or procedure.scale)")
        return scale

    def infer(self, run, args):
        """`engine infer`: upscale image files; each is written as `<stem>_x<scale>.png` into
        --output (created) or beside the input."""
        from PIL import Image

        from engine.train.evaluation.infer import output_folder, read_image
        scale = self.recipe_scale(run)
        folder = output_folder(args)
        for name in args.inputs:
            path = Path(name)
            lr = read_image(str(path), 3)[None]
            hr = self.upscale(lr, scale)[0]
            target = (folder or path.parent) / f"{path.stem}_x{scale}.png"
            pixels = (hr * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            Image.fromarray(pixels).save(target)
            yield (f"{path} -> {target} ({lr.shape[-1]}x{lr.shape[-2]} -> "
                   f"{hr.shape[-1]}x{hr.shape[-2]})")

    def sample_figure(self, run, n: int, output: str, seed: int) -> str:
        """`engine sample`: before/after rows of the first test images: bicubic, the network's
        output and the ground truth (centre crops of at most 128 px), each with its PSNR (Y,
        whole image, border = scale)."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        dataset = run.eval_sets["test"]
        count = max(1, min(n, 3, len(dataset)))
        fig, axes = plt.subplots(count, 3, figsize=(9, 3.2 * count), squeeze=False)
        for row, i in zip(axes, range(count)):
            lr, hr = (t[None] for t in dataset[i])
            scale = self.scale_of(lr, hr)
            bicubic, out = as_saved(bicubic_upscale(lr, scale)), self.upscale(lr, scale)
            panels = [("bicubic", bicubic, f"{float(psnr_y(bicubic, hr, border=scale)):.2f} dB"),
                      (run.recipe.name, out, f"{float(psnr_y(out, hr, border=scale)):.2f} dB"),
                      ("ground truth", hr, "PSNR (Y)")]
            for ax, (title, image, psnr) in zip(row, panels):
                crop = centre_crop(image[0], FIGURE_CROP).permute(1, 2, 0).numpy()
                ax.imshow(crop, interpolation="nearest", vmin=0, vmax=1)
                ax.set_title(f"{title}\n{psnr}", fontsize=9)
                ax.axis("off")
        fig.tight_layout()
        fig.savefig(output, dpi=110)
        plt.close(fig)
        return (f"wrote {output}: {count} test images x{self.scale_of(lr, hr)}: bicubic, "
                f"{run.recipe.name} and the ground truth (centre crops of at most {FIGURE_CROP} px)")
