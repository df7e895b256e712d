"""Training: a recipe (YAML) names a spec, its data, a procedure and its optimisation.

- `recipe`: load and check a recipe; `runner`: train, resume, evaluate (`engine train/eval`)
- `registry`: the named registries a recipe draws from; `load_all()`, below, fills them
- `data/`: datasets and transforms; `loader`: seeded, resumable batches split across ranks
- `procedures/`: one training procedure per file (classify, gan, diffusion, seq2seq, ...)
- `losses/`: the registered losses and the GAN objectives; `optim`: optimizers and schedules
- `evaluation/`: metrics, sampling and judges, decoding, diffusion schedules
- `checkpoint`, `distributed`, `progress`, `plot`: the run's files, ranks, bars and curves
- `weights`: starting weights (torchvision's or another run's) for `weights:` and `--weights`
- `judges`: the trained networks that score samples (digit classifiers, Pix2Pix's FCN judge)

Layering: training imports `engine.compiler` (and `engine.views` where it draws); nothing
below imports training.
"""


def load_all() -> None:
    """Import the modules whose decorators fill the registries (procedures, datasets, losses,
    metrics, optimizers): a recipe can only name what they register."""
    from engine.train import data, losses, optim, procedures  # noqa: F401
    from engine.train.evaluation import metrics  # noqa: F401
