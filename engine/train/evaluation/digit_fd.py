"""Digit-FD: a Fréchet distance for generated digits, judged by the project's own classifier.

FID (Heusel et al., 2017) compares the Gaussian statistics of Inception-v3 features of real and
generated images. Inception's ImageNet weights are not available offline and say little about
8x8 or 28x28 digits, so digit-FD uses the same formula,

    FD = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2),

in the feature space of a digit classifier (the input of its last linear layer) trained by a
bundled classification recipe (`FEATURE_RECIPES`). The classifier's checkpoint is trained on
demand the first time and cached under $ENGINE_CACHE (default ~/.cache/engine). Its figures
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

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from engine.compiler.ir import Diagnostic, Loc, SpecError

# dataset -> the bundled recipe whose classifier judges its samples (same image size)
FEATURE_RECIPES = {"digits": "digits_cnn", "mnist": "mnist_cnn", "usps": "usps_cnn"}
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
    """The cached classifier of a digit dataset, applied to batches of [0, 1] images."""

    def __init__(self, dataset: str, root: str | None = None, device: str = "cpu"):
        if dataset not in FEATURE_RECIPES:
            raise SpecError([Diagnostic(
                f"digit-FD has no judge for dataset '{dataset}'", Loc("eval.sample_metrics"),
                hint=f"it judges {', '.join(FEATURE_RECIPES)}; drop digit_fd for this recipe")])
        from engine.train.data.transforms import build_transform
        from engine.train.recipe import load_recipe
        overrides = [f"data.root={root}"] if root else []
        self.recipe = load_recipe(FEATURE_RECIPES[dataset], overrides)
        self.device = torch.device(device)
        self.model = self._load_model()
        eval_items = (self.recipe["data"].get("transforms") or {}).get("eval") or []
        self.transform = build_transform(list(eval_items), "data.transforms.eval")
        self.head = [m for m in self.model.modules() if isinstance(m, nn.Linear)][-1]

    def _load_model(self) -> nn.Module:
        from engine.compiler.build import build
        model = build(self.recipe.shaped, device=str(self.device))
        model.load_state_dict(torch.load(cached_classifier(self.recipe), map_location=self.device,
                                         weights_only=True))
        return model.eval()

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


def cache_dir() -> Path:
    return Path(os.environ.get("ENGINE_CACHE") or Path.home() / ".cache" / "engine") / "digit_fd"


def cached_classifier(recipe) -> Path:
    """The judge's weights: trained from `recipe` the first time, then read from the cache."""
    from engine.compiler.dump import resolved_dict
    key = json.dumps({"recipe": json.loads(json.dumps(recipe.doc)),
                      "spec": resolved_dict(recipe.shaped)}, sort_keys=True, default=str)
    path = cache_dir() / f"{recipe.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"
    if not path.exists():
        _train_classifier(recipe, path)
    return path


def _train_classifier(recipe, path: Path) -> None:
    from engine.train.checkpoint import load_checkpoint
    from engine.train.runner import Run
    print(f"digit-FD: training its judge once, recipe '{recipe.name}' (cached as {path})",
          file=sys.stderr, flush=True)
    folder = path.parent / f"{path.stem}-run"
    shutil.rmtree(folder, ignore_errors=True)
    Run(recipe, folder).train()
    state = load_checkpoint(folder / "checkpoints" / "last.pt")["procedure"]
    weights = state["ema"] if state.get("ema") else state["model"]
    weights = {k.removeprefix("module."): v for k, v in weights.items() if k != "n_averaged"}
    tmp = path.with_suffix(".tmp")
    torch.save(weights, tmp)
    tmp.replace(path)  # atomic: a killed run never leaves a half-written judge
    shutil.rmtree(folder, ignore_errors=True)
