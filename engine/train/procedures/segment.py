"""`segment`: per-pixel classification (semantic segmentation), e.g. U-Net on ISBI membranes.

Batches are `(image [B, C, H, W], mask [B, H, W] long)`; the model gives logits [B, K, H, W].
loss = cross-entropy per pixel + `dice_weight` * soft Dice loss of the class `dice_class`
(Milletari et al., 2016: 1 - 2 sum(p t) / (sum p + sum t), on the softmax probability; off by
default, as in the U-Net paper). Evaluation reports the loss, the Dice and IoU of class 1 (the
membrane) and the pixel accuracy, per image, and beside them what one class everywhere scores
(`baseline_accuracy`: background everywhere; `baseline_dice`: membrane everywhere); `best.pt` is
chosen by the val loss.

Any image size is predicted: a U-Net needs sides divisible by 2^(len(widths) - 1) (`pad_multiple`,
default null: that of the spec's `widths`, else 1), so `predict` pads the bottom and right edges
by reflection (replication where the image is smaller than the pad) up to the next multiple and
crops the label map back; nothing is resized.

`engine infer R --checkpoint C a.png b.png [-o DIR]`: reads each image with the channels the spec
takes, applies the recipe's eval transforms, and writes `<stem>_mask.png` (8-bit grey, the dataset's
convention: with 2 classes membrane (1) black 0 and cells 255 as the ISBI label PNGs; with K > 2
classes class k is k * (255 // (K - 1))) and `<stem>_overlay.png` (the image in grey, each
predicted class >= 1 tinted at 50%: class 1 red) into DIR (created) or beside the input.

`engine sample` (option `figure`): `overlay` (default) draws, per held-out test image, the image,
the prediction tinted over it and the error map against the true mask (false positives of class 1
red, false negatives blue, right pixels the dimmed image) with each image's Dice; `grid` the
older grid of images, predicted masks and true masks.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.train.evaluation.infer import eval_transform, input_shape, output_folder, read_image
from engine.train.evaluation.metrics import dice, iou, pixel_accuracy
from engine.train.procedures.base import Procedure
from engine.train.registry import PROCEDURES

# tints of the predicted classes 1, 2, ... (class 0, background, is left grey)
CLASS_COLOURS = ((1.0, 0.0, 0.0), (0.0, 0.8, 0.0), (0.0, 0.3, 1.0), (1.0, 0.8, 0.0), (0.8, 0.0, 1.0))
FALSE_POSITIVE, FALSE_NEGATIVE = (1.0, 0.0, 0.0), (0.0, 0.4, 1.0)


def constant_baselines(masks: Tensor) -> dict[str, Tensor]:
    """What predicting one class everywhere scores, per image: `baseline_accuracy`, the pixel
    accuracy of background (0) everywhere (the majority class; its membrane Dice is 0), and
    `baseline_dice`, the membrane (1) Dice of membrane everywhere (the best Dice a constant
    prediction gets)."""
    everywhere = torch.ones_like(masks)
    return {"baseline_accuracy": pixel_accuracy(torch.zeros_like(masks), masks),
            "baseline_dice": dice(everywhere, masks)}


def soft_dice_loss(logits: Tensor, target: Tensor, cls: int = 1, eps: float = 1.0) -> Tensor:
    """1 - soft Dice of class `cls` per image, averaged over the batch."""
    p = logits.float().softmax(dim=1)[:, cls].flatten(1)
    t = (target == cls).flatten(1).float()
    return (1 - (2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


def heldout_pairs(run, split: str, n: int | None = None) -> tuple[Tensor, Tensor]:
    """The first n (image, mask) items of a split, untransformed: [n, C, H, W], [n, H, W]."""
    from engine.train.data import build_dataset, data_root
    data = run.recipe["data"]
    dataset = build_dataset(data["dataset"], data_root(data.get("root")), split,
                            run.recipe["seed"], None, dict(data.get("args") or {}))
    items = [dataset[i] for i in range(len(dataset) if n is None else min(n, len(dataset)))]
    return torch.stack([x for x, _ in items]), torch.stack([m for _, m in items])


def mask_image(mask: Tensor) -> Tensor:
    """A label map [B, H, W] as a grey image [B, 1, H, W]: membrane (1) black, as in the PNGs."""
    return (mask == 0).float().unsqueeze(1)


def pad_to_multiple(images: Tensor, multiple: int) -> Tensor:
    """Images [B, C, H, W] padded at the bottom and right up to sides divisible by `multiple`:
    by reflection, or by replication where a side is too small to reflect the pad."""
    h, w = images.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return images
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(images, (0, pw, 0, ph), mode=mode)


def mask_pixels(labels: Tensor, classes: int) -> Tensor:
    """A label map [H, W] as 8-bit grey pixels in the dataset's convention: with 2 classes
    membrane (1) 0 and background 255, as the ISBI label PNGs; else class k as k * (255 // (K-1))."""
    if classes <= 2:
        return ((labels == 0).to(torch.uint8) * 255)
    return (labels * (255 // (classes - 1))).to(torch.uint8)


def grey(image: Tensor) -> Tensor:
    """An image [C, H, W] in [0, 1] as grey [H, W] (the mean of its channels)."""
    return image.float().mean(0).clamp(0, 1)


def tint(image: Tensor, labels: Tensor, alpha: float = 0.5) -> Tensor:
    """The image [C, H, W] in grey as RGB [H, W, 3], each class >= 1 tinted with its colour."""
    rgb = grey(image)[..., None].repeat(1, 1, 3)
    for k in range(1, int(labels.max()) + 1):
        colour = torch.tensor(CLASS_COLOURS[(k - 1) % len(CLASS_COLOURS)])
        where = labels == k
        rgb[where] = (1 - alpha) * rgb[where] + alpha * colour
    return rgb


def error_map(image: Tensor, predicted: Tensor, true: Tensor, cls: int = 1) -> Tensor:
    """RGB [H, W, 3]: the dimmed grey image, false positives of class `cls` red and its false
    negatives blue."""
    rgb = 0.5 * grey(image)[..., None].repeat(1, 1, 3)
    rgb[(predicted == cls) & (true != cls)] = torch.tensor(FALSE_POSITIVE)
    rgb[(predicted != cls) & (true == cls)] = torch.tensor(FALSE_NEGATIVE)
    return rgb


def save_rgb(rgb: Tensor, path: Path) -> None:
    from PIL import Image
    Image.fromarray((rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()).save(path)


@PROCEDURES.register("segment")
class Segment(Procedure):
    OPTIONS = {"dice_weight": 0.0, "dice_class": 1, "pad_multiple": None, "figure": "overlay"}
    CHOICES = {"figure": ("overlay", "grid")}

    def logits(self, model, images: Tensor) -> Tensor:
        return model(images).float()

    def objective(self, logits: Tensor, masks: Tensor) -> Tensor:
        loss = F.cross_entropy(logits, masks)
        if self.options["dice_weight"]:
            loss = loss + self.options["dice_weight"] * soft_dice_loss(
                logits, masks, self.options["dice_class"])
        return loss

    def train_step(self, batch) -> dict[str, float]:
        images, masks = batch
        with self.autocast():
            logits = self.logits(self.model, images)
        loss = self.objective(logits, masks)
        self.optimize(loss)
        return {"loss": loss.item(), "accuracy": float(pixel_accuracy(logits, masks).mean())}

    @torch.no_grad()
    def eval_step(self, batch, metrics: list) -> dict[str, Tensor]:
        images, masks = batch
        with self.autocast():
            logits = self.logits(self.eval_model(), images)
        per_pixel = F.cross_entropy(logits, masks, reduction="none").flatten(1).mean(1)
        return {"loss": per_pixel, "dice": dice(logits, masks), "iou": iou(logits, masks),
                "pixel_accuracy": pixel_accuracy(logits, masks), **constant_baselines(masks)}

    def size_multiple(self) -> int:
        """What the network's input sides must divide by: `pad_multiple`, else 2^(len(widths)-1)
        of a spec with `widths` (a U-Net's pooling levels), else 1."""
        if self.options["pad_multiple"]:
            return int(self.options["pad_multiple"])
        shaped = getattr(self.recipe, "shaped", None)
        widths = (shaped.spec.params or {}).get("widths") if shaped is not None else None
        return 2 ** (len(widths) - 1) if isinstance(widths, (list, tuple)) and widths else 1

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Label maps [B, H, W] of images [B, C, H, W] (as the network sees them), one image at a
        time, each padded to the size multiple and its labels cropped back to H x W."""
        model = self.eval_model()
        model.eval()
        h, w = images.shape[-2:]
        multiple = self.size_multiple()
        with self.autocast():
            return torch.cat([self.logits(model, pad_to_multiple(x[None].to(self.device), multiple))
                              .argmax(1)[:, :h, :w].cpu() for x in images])

    # ---- the command line -----------------------------------------------------------------
    def infer(self, run, args):
        """`engine infer`: the label map of each image file, written as `<stem>_mask.png` and
        `<stem>_overlay.png` into --output (created) or beside the input."""
        from PIL import Image

        shape, folder = input_shape(run), output_folder(args)
        transform, classes = eval_transform(run), self.num_classes(run)
        for name in args.inputs:
            path = Path(name)
            image = read_image(str(path), shape[1])
            labels = self.predict((transform(image) if transform else image)[None])[0]
            mask, overlay = ((folder or path.parent) / f"{path.stem}_{kind}.png"
                             for kind in ("mask", "overlay"))
            Image.fromarray(mask_pixels(labels, classes).numpy()).save(mask)
            save_rgb(tint(image, labels), overlay)
            yield (f"{path} -> {mask}, {overlay} ({labels.shape[1]}x{labels.shape[0]}, "
                   f"class 1 {class_name(run, 1)}: {float((labels == 1).float().mean()):.1%} "
                   "of pixels)")

    def num_classes(self, run) -> int:
        """K, the number of classes: the spec's `classes`, else 2."""
        return int((run.shaped.spec.params or {}).get("classes") or 2)

    def sample_figure(self, run, n: int, output: str, seed: int) -> str:
        if self.options["figure"] == "grid":
            return self.sample_grid(run, n, output)
        return self.overlay_figure(run, n, output)

    def sample_grid(self, run, n: int, output: str) -> str:
        """Rows of held-out images, their predicted masks and the true masks."""
        from engine.train.evaluation.sampling import save_grid
        images, masks = heldout_pairs(run, "test", n)
        predicted = self.predict(self.transformed(run, images))
        grid = torch.cat([images[:, :1], mask_image(predicted), mask_image(masks)])
        path = save_grid(grid, Path(output), len(images))
        return (f"wrote {path}: {len(images)} held-out test images (row 1), predicted membrane "
                "(row 2, black) and the true mask (row 3)")

    def overlay_figure(self, run, n: int, output: str) -> str:
        """Per held-out test image (at most n): the image, the prediction tinted over it and
        the error map against the true mask, with the image's Dice of class 1."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        images, masks = heldout_pairs(run, "test", n)
        predicted = self.predict(self.transformed(run, images))
        scores = dice(predicted, masks)
        fig, axes = plt.subplots(len(images), 3, figsize=(9, 3.2 * len(images)), squeeze=False)
        for i, row in enumerate(axes):
            panels = [(f"test image {i}", grey(images[i])),
                      (f"predicted {class_name(run, 1)} (red)", tint(images[i], predicted[i])),
                      (f"Dice {float(scores[i]):.3f}: false + red, false - blue",
                       error_map(images[i], predicted[i], masks[i]))]
            for ax, (title, picture) in zip(row, panels):
                ax.imshow(picture.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_title(title, fontsize=9)
                ax.axis("off")
        fig.tight_layout()
        fig.savefig(output, dpi=110)
        plt.close(fig)
        return (f"wrote {output}: {len(images)} held-out test images, the predicted "
                f"{class_name(run, 1)} tinted red, and the errors against the true masks "
                f"(false positives red, false negatives blue); mean Dice {float(scores.mean()):.3f}")

    @staticmethod
    def transformed(run, images: Tensor) -> Tensor:
        """Images [B, C, H, W] in [0, 1] after the recipe's eval transforms."""
        transform = eval_transform(run)
        return torch.stack([transform(x) for x in images]) if transform else images


def class_name(run, k: int) -> str:
    """The dataset's name of class k (e.g. membrane), else "class k"."""
    classes = getattr(run.eval_sets.get("test"), "classes", None) or []
    return str(classes[k]) if k < len(classes) else f"class {k}"
