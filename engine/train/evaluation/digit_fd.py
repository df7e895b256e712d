"""Digit-FD: a Fréchet distance for generated digits, judged by the project's own classifier.

FID (Heusel et al., 2017) compares the Gaussian statistics of Inception-v3 features of real and
generated images. Inception's ImageNet weights are not available offline and say little about
8x8 or 28x28 digits, so digit-FD uses the same formula,

    FD = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2),

in the feature space of a digit classifier (the input of its last linear layer) trained by a
bundled classification recipe (engine/train/judges.py: trained on demand the first time and
cached under $ENGINE_CACHE, default ~/.cache/engine). Its figures
are comparable only with others computed the same way (same classifier recipe, same number of
samples, same reference split): `engine eval` therefore prints two reference points beside a
model's FD, both with the same n:

- real: held-out real images (the val split) against the reference (the floor);
- pca_gaussian: samples of a Gaussian fitted to the training images in a 50-component PCA
  space (the baseline every deep generative model must beat).

The classifier also reports its mean confidence on the samples, the histogram of the classes
it sees, and, for conditional models, how often a sample is classified as its requested label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

PCA_COMPONENTS = 50


# ---- the distance ---------------------------------------------------------------------------
def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of features [N, D], in float64."""
    x = np.asarray(features, dtype=np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray,
                     cov_b: np.ndarray) -> float:
    """The Fréchet (2-Wasserstein) distance between N(mu_a, cov_a) and N(mu_b, cov_b).

    Tr((S_a S_b)^1/2) is computed as the sum of square roots of the eigenvalues of the symmetric
    S_a^1/2 S_b S_a^1/2 (same spectrum, no complex round-off as in a general sqrtm).
    """
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def feature_fd(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


# ---- the PCA-Gaussian baseline --------------------------------------------------------------
def pca_gaussian_samples(images: Tensor, n: int, generator: torch.Generator,
                         components: int = PCA_COMPONENTS) -> Tensor:
    """n images from a Gaussian fitted to `images` [N, C, H, W] in its top PCA components.

    Pixels are projected on the leading `components` principal axes, where the data's covariance
    is diagonal; each coordinate is drawn from N(0, its variance), mapped back and clipped to
    [0, 1]. The discarded directions are left at the mean.
    """
    flat = images.reshape(len(images), -1).double()
    mean = flat.mean(dim=0)
    _, singular, axes = torch.linalg.svd(flat - mean, full_matrices=False)
    k = min(components, axes.shape[0])
    # an axis's sign is arbitrary (it may flip with the thread count): fix it, so that a seed
    # always gives the same samples
    signs = torch.sign(axes.gather(1, axes.abs().argmax(dim=1, keepdim=True)))
    axes = axes * signs
    std = singular[:k] / (len(flat) - 1) ** 0.5
    coords = torch.randn(n, k, generator=generator, dtype=torch.float64) * std
    out = (coords @ axes[:k] + mean).clamp(0, 1)
    return out.reshape(n, *images.shape[1:]).float()


# ---- the judge ------------------------------------------------------------------------------
@dataclass
class Judgement:
    features: np.ndarray  # [N, D]
    probs: Tensor  # [N, classes]

    @property
    def predicted(self) -> Tensor:
        return self.probs.argmax(dim=1)

    @property
    def confidence(self) -> float:
        return float(self.probs.max(dim=1).values.mean())

    def histogram(self) -> list[int]:
        return torch.bincount(self.predicted, minlength=self.probs.shape[1]).tolist()


class DigitJudge:
    """A digit classifier applied to batches of [0, 1] images: its features (the input of its
    last linear layer) and class probabilities. `engine.train.judges.digit_judge` builds the
    cached one of a dataset."""

    def __init__(self, model: nn.Module, transform, device: str = "cpu", identity: str = ""):
        self.model, self.transform, self.device = model, transform, torch.device(device)
        # which weights judged (recipe and content hash): a figure made by an older judge
        # says so, as every digit-FD figure is only comparable under the same judge
        self.identity = identity
        self.head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]

    @torch.no_grad()
    def judge(self, images: Tensor, batch: int = 500) -> Judgement:
        feats, probs = [], []
        captured: list[Tensor] = []
        hook = self.head.register_forward_hook(lambda m, args, out: captured.append(args[0]))
        try:
            for chunk in images.split(batch):
                if self.transform is not None:
                    chunk = torch.stack([self.transform(x) for x in chunk])
                logits = self.model(chunk.to(self.device))
                feats.append(captured.pop().flatten(1).double().cpu())
                probs.append(logits.float().softmax(dim=1).cpu())
        finally:
            hook.remove()
        return Judgement(torch.cat(feats).numpy(), torch.cat(probs))
