"""Evaluation metrics: each maps (outputs, targets) to one value per sample, averaged by the runner."""

from __future__ import annotations

import torch
from torch import Tensor

from engine.train.evaluation.sr_metrics import psnr_y, ssim_y
from engine.train.registry import METRICS


@METRICS.register("accuracy")
def accuracy(logits: Tensor, target: Tensor) -> Tensor:
    """Top-1 accuracy: 1 where the highest logit is the label."""
    return (logits.argmax(dim=-1) == target).float()


@METRICS.register("top5")
def top5(logits: Tensor, target: Tensor) -> Tensor:
    """Top-5 accuracy: 1 where the label is among the five highest logits."""
    k = min(5, logits.shape[-1])
    return (logits.topk(k, dim=-1).indices == target.unsqueeze(-1)).any(dim=-1).float()


@METRICS.register("psnr")
def psnr(output: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB of images in [0, 1]: 10 log10(1 / MSE), per image."""
    mse = (output.float() - target.float()).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


# PSNR and SSIM on the BT.601 luma, as SR papers report them (evaluation/sr_metrics.py). Registered
# with border 0, since a metric is called as (output, target); SR procedures that know the scale
# call them with `border=scale`.
METRICS.add("psnr_y", psnr_y)
METRICS.add("ssim_y", ssim_y)


def per_sample_loss(loss: torch.nn.Module, logits: Tensor, target: Tensor) -> Tensor:
    """The recipe's loss, one value per sample (so batches of any size average exactly)."""
    reduction = loss.reduction
    loss.reduction = "none"
    try:
        return loss(logits, target).reshape(len(target), -1).mean(dim=1)
    finally:
        loss.reduction = reduction


def _membrane_counts(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per image: |P and T|, |P|, |T| of the membrane class (1). `pred` is class logits
    [B, K, H, W] or a label map [B, H, W]; `target` a label map [B, H, W]."""
    if pred.dim() == target.dim() + 1:
        pred = pred.argmax(dim=1)
    p, t = (pred == 1).flatten(1).float(), (target == 1).flatten(1).float()
    return (p * t).sum(dim=1), p.sum(dim=1), t.sum(dim=1)


@METRICS.register("dice")
def dice(pred: Tensor, target: Tensor) -> Tensor:
    """Dice of the membrane class (1), per image: 2|P and T| / (|P| + |T|); 1 when both are empty."""
    both, p, t = _membrane_counts(pred, target)
    return torch.where(p + t > 0, 2 * both / (p + t).clamp_min(1), torch.ones_like(both))


@METRICS.register("iou")
def iou(pred: Tensor, target: Tensor) -> Tensor:
    """Intersection over union (Jaccard) of the membrane class (1), per image; 1 when both are empty."""
    both, p, t = _membrane_counts(pred, target)
    union = p + t - both
    return torch.where(union > 0, both / union.clamp_min(1), torch.ones_like(both))


@METRICS.register("pixel_accuracy")
def pixel_accuracy(pred: Tensor, target: Tensor) -> Tensor:
    """The fraction of pixels whose class is right, per image (logits [B, K, H, W] or labels)."""
    if pred.dim() == target.dim() + 1:
        pred = pred.argmax(dim=1)
    return (pred == target).flatten(1).float().mean(dim=1)


def high_frequency_energy(images: Tensor) -> Tensor:
    """The mean absolute 3x3 Laplacian of each image [B, C, H, W] (valid pixels only), per image:
    how much fine texture it has. A generator that paints the average (L1 alone) scores well
    below real images; one as textured as the data, about the same (Pix2Pix's realism check)."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=images.dtype)
    channels = images.shape[1]
    weight = kernel.expand(channels, 1, 3, 3).to(images.device)
    return torch.nn.functional.conv2d(images, weight, groups=channels).abs().flatten(1).mean(1)
