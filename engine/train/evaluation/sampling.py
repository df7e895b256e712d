"""`engine sample` and the sample metrics of `engine eval`: images from a trained generative model.

Grids are PNGs written with torchvision's `save_image`; small images (8x8 digits) are enlarged
with nearest-neighbour so that a grid is readable. A class-conditional model without `--label`
gets one row per class. A model that cannot generate (a plain autoencoder, VQ-VAE stage 1)
draws a reconstruction grid: rows of held-out originals, each followed by its reconstruction.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import save_image

from engine.compiler.ir import located_error

MIN_SIDE = 28  # grids of smaller images are enlarged to this side


def generator_for(run, seed: int) -> torch.Generator:
    return torch.Generator(device=run.device).manual_seed(seed)


def generate(procedure, n: int, generator: torch.Generator, labels: Tensor | None = None,
             batch: int = 500) -> Tensor:
    """n samples in [0, 1] on the CPU, drawn `batch` at a time."""
    chunks = []
    for start in range(0, n, batch):
        part = labels[start:start + batch] if labels is not None else None
        chunks.append(procedure.sample(min(batch, n - start), generator, part).cpu())
    return torch.cat(chunks)


def split_images(run, split: str, n: int | None = None) -> tuple[Tensor, Tensor]:
    """The first n images (and labels) of a split, untransformed ([0, 1], as loaded)."""
    from engine.train.data import build_dataset, data_root
    data = run.recipe["data"]
    dataset = build_dataset(data["dataset"], data_root(data.get("root")), split,
                            run.recipe["seed"], None, dict(data.get("args") or {}))
    count = len(dataset) if n is None else min(n, len(dataset))
    items = [dataset[i] for i in range(count)]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


def class_rows(n: int, classes: int) -> tuple[Tensor, int]:
    """Labels for a grid with one row per class: (labels, images per row)."""
    per_row = max(1, math.ceil(n / classes))
    return torch.arange(classes).repeat_interleave(per_row), per_row


def save_grid(images: Tensor, path: str | Path, nrow: int) -> Path:
    if images.shape[-1] < MIN_SIDE:
        factor = math.ceil(MIN_SIDE / images.shape[-1])
        images = F.interpolate(images, scale_factor=factor, mode="nearest")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images, path, nrow=nrow, padding=2, pad_value=0.5)
    return path


def sample_grid(run, n: int, output: str, label: int | None = None, seed: int = 0,
                reconstruct: bool = False) -> str:
    """Write a grid of samples (or reconstructions) and say what it shows."""
    procedure = run.procedure
    figure = getattr(procedure, "sample_figure", None)  # translations, traversals ...
    if figure is not None and not reconstruct and label is None:
        said = figure(run, n, output, seed)
        if said is not None:  # None: this model draws the usual grid
            return said
    if reconstruct or not procedure.can_sample:
        return _reconstruction_grid(run, n, output)
    generator = generator_for(run, seed)
    classes = procedure.options.get("classes", 10)
    if label is not None:
        if not procedure.conditional:
            raise located_error("--label needs a class-conditional model; this one is not",
                                run.recipe.file, hint="leave out --label")
        if not 0 <= label < classes:
            raise located_error(f"--label {label} is not a class (0..{classes - 1})",
                                run.recipe.file, hint=f"give a label from 0 to {classes - 1}")
        labels, nrow = torch.full((n,), label), math.ceil(math.sqrt(n))
    elif procedure.conditional:
        labels, nrow = class_rows(n, classes)
    else:
        labels, nrow = None, math.ceil(math.sqrt(n))
    count = n if labels is None else len(labels)
    path = save_grid(generate(procedure, count, generator, labels), output, nrow)
    what = f"label {label}" if label is not None else \
        "one row per class" if labels is not None else "samples"
    return f"wrote {path}: {count} {what}"


def _reconstruction_grid(run, n: int, output: str) -> str:
    procedure = run.procedure
    if not procedure.can_reconstruct:
        raise located_error("this model neither samples nor reconstructs", run.recipe.file,
                            hint="check the procedure")
    per_row = 8
    images, labels = split_images(run, "test", n)
    recon = procedure.reconstruct(images.to(run.device), labels.to(run.device)).cpu()
    rows = []
    for start in range(0, len(images), per_row):  # a row of originals, then their reconstructions
        rows += [images[start:start + per_row], recon[start:start + per_row]]
    path = save_grid(torch.cat(rows), output, per_row)
    return f"wrote {path}: {len(images)} held-out test images (odd rows) and reconstructions"


# ---- sample metrics (`eval: {sample_metrics: [digit_fd, label_accuracy]}`) ---------------
def check_sample_metrics(run, names: list[str], known: set[str]) -> None:
    """A procedure with figures of its own (BLEU ...) refuses the ones it cannot give."""
    other = [n for n in names if n not in known]
    if other:
        raise located_error(f"procedure '{run.recipe['procedure']}' cannot compute sample metric(s) "
                            f"{', '.join(other)}", run.recipe.file,
                            hint=f"it gives: {', '.join(sorted(known))}")



def evaluate_samples(run, split: str, names: list[str], seed: int = 0) -> tuple[dict, list[str]]:
    """Digit-FD of n samples against `split`, with its two reference points (same n)."""
    from engine.train.evaluation.digit_fd import feature_fd, pca_gaussian_samples
    procedure, data = run.procedure, run.recipe["data"]
    own = getattr(procedure, "evaluate_samples", None)  # its own figures (translations ...)
    if own is not None:
        return own(run, split, names, seed)
    if not procedure.can_sample:
        raise located_error("sample metrics need a model that generates", run.recipe.file,
                            hint="drop eval.sample_metrics, or evaluate the prior stage")
    judge = run.digit_judge(data["dataset"], data.get("root"))
    reference = judge.judge(split_images(run, split)[0]).features
    heldout, _ = split_images(run, "val")
    n = min(run.recipe.get("eval", {}).get("samples", 1000), len(heldout))
    labels = torch.arange(n) % procedure.options.get("classes", 10) \
        if procedure.conditional else None
    judged = judge.judge(generate(procedure, n, generator_for(run, seed), labels))
    out: dict[str, float | str] = {"samples": n, "digit_judge": judge.identity}
    notes = ["classes of the samples: " + "  ".join(
        f"{c}:{k}" for c, k in enumerate(judged.histogram()))]
    if "digit_fd" in names:
        train, _ = split_images(run, "train")
        baseline = pca_gaussian_samples(train, n, torch.Generator().manual_seed(seed))
        out.update({"digit_fd": feature_fd(judged.features, reference),
                    "digit_fd_real": feature_fd(judge.judge(heldout[:n]).features, reference),
                    "digit_fd_pca_gaussian": feature_fd(judge.judge(baseline).features,
                                                        reference),
                    "confidence": judged.confidence})
    if "label_accuracy" in names:
        if labels is None:
            raise located_error("label_accuracy needs a class-conditional model", run.recipe.file,
                                hint="drop label_accuracy from eval.sample_metrics")
        out["label_accuracy"] = float((judged.predicted == labels).float().mean())
    if "code_agreement" in names:
        out.update(_code_agreement(run, judge, n, seed, notes))
    return out, notes


def _code_agreement(run, judge, n: int, seed: int, notes: list[str]) -> dict:
    """InfoGAN: how often the judge's digit matches the categorical code, after matching each
    code to one digit (the best one-to-one assignment, Hungarian algorithm), as in the paper's
    unsupervised classification figure."""
    from scipy.optimize import linear_sum_assignment
    procedure = run.procedure
    if not getattr(procedure, "has_codes", False):
        raise located_error("code_agreement needs a model with a categorical latent code (InfoGAN)",
                            run.recipe.file, hint="drop code_agreement from eval.sample_metrics")
    images, codes = procedure.coded_samples(n, generator_for(run, seed + 1))
    predicted = judge.judge(images).predicted
    k = int(max(codes.max(), predicted.max())) + 1
    counts = torch.zeros(k, k, dtype=torch.long)
    counts.index_put_((codes.cpu(), predicted.cpu()), torch.ones(len(codes), dtype=torch.long),
                      accumulate=True)
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    notes.append("categorical code -> digit: " + "  ".join(f"{r}->{c}" for r, c in zip(rows, cols)))
    return {"code_agreement": float(counts[rows, cols].sum()) / len(codes)}
