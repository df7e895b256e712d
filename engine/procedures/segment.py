"""`segment`: per-pixel classification (semantic segmentation), e.g. U-Net on ISBI membranes.

Batches are `(image [B, C, H, W], mask [B, H, W] long)`; the model gives logits [B, K, H, W].
loss = cross-entropy per pixel + `dice_weight` * soft Dice loss of the class `dice_class`
(Milletari et al., 2016: 1 - 2 sum(p t) / (sum p + sum t), on the softmax probability; off by
default, as in the U-Net paper). Evaluation reports the loss, the Dice and IoU of class 1 (the
membrane) and the pixel accuracy, per image; `best.pt` is chosen by the val loss.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.metrics import dice, iou, pixel_accuracy
from engine.procedures.base import Procedure
from engine.registry import PROCEDURES


def soft_dice_loss(logits: Tensor, target: Tensor, cls: int = 1, eps: float = 1.0) -> Tensor:
    """1 - soft Dice of class `cls` per image, averaged over the batch."""
    p = logits.float().softmax(dim=1)[:, cls].flatten(1)
    t = (target == cls).flatten(1).float()
    return (1 - (2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


def heldout_pairs(run, split: str, n: int | None = None) -> tuple[Tensor, Tensor]:
    """The first n (image, mask) items of a split, untransformed: [n, C, H, W], [n, H, W]."""
    from engine.data import build_dataset, data_root
    data = run.recipe["data"]
    dataset = build_dataset(data["dataset"], data_root(data.get("root")), split,
                            run.recipe["seed"], None, dict(data.get("args") or {}))
    items = [dataset[i] for i in range(len(dataset) if n is None else min(n, len(dataset)))]
    return torch.stack([x for x, _ in items]), torch.stack([m for _, m in items])


def mask_image(mask: Tensor) -> Tensor:
    """A label map [B, H, W] as a grey image [B, 1, H, W]: membrane (1) black, as in the PNGs."""
    return (mask == 0).float().unsqueeze(1)


@PROCEDURES.register("segment")
class Segment(Procedure):
    OPTIONS = {"dice_weight": 0.0, "dice_class": 1}

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
                "pixel_accuracy": pixel_accuracy(logits, masks)}

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Label maps [B, H, W] of images [B, C, H, W] in [0, 1], one image at a time."""
        model = self.eval_model()
        with self.autocast():
            return torch.cat([self.logits(model, x[None].to(self.device)).argmax(1).cpu()
                              for x in images])

    def sample_figure(self, run, n: int, output: str, seed: int) -> str:
        """Rows of held-out images, their predicted masks and the true masks."""
        from engine.sampling import save_grid
        images, masks = heldout_pairs(run, "test", n)
        predicted = self.predict(images)
        grid = torch.cat([images[:, :1], mask_image(predicted), mask_image(masks)])
        path = save_grid(grid, Path(output), len(images))
        return (f"wrote {path}: {len(images)} held-out test images (row 1), predicted membrane "
                "(row 2, black) and the true mask (row 3)")
