"""`compile: true` for real: a recipe trained eagerly and through torch.compile, side by side.

    python benchmarks/check_compile.py [digits_cnn] [--epochs 3] [--set KEY=VALUE ...]

The suite checks that `compile: true` reaches `torch.compile` and keeps the plain state_dict keys
(tests/train/test_precision.py) without compiling, because Inductor needs a C++ compiler and
20 s or more even for a tiny model. This script does the real thing: the same recipe, seed and
data, once eager and once compiled. First the exact check: one batch through the freshly built
model, eager and compiled, and the largest relative difference of the loss and of any gradient
(float reordering only: must stay under 1e-4). Then both trainings, each epoch's losses side by
side (rounding compounds over the steps: must stay within 5%), with the wall time of each run
(the compiled one includes compiling). Dropout is switched off by default (`--set`): compiled code
draws its own random numbers for dropout masks, so with dropout the two runs are two different
random trainings and differ by more than rounding.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(name: str, epochs: int, compiled: bool, folder: Path,
        overrides: list[str]) -> tuple[list[dict], float]:
    """The metrics rows and wall seconds of one training of recipe `name`."""
    from engine.train.recipe import load_recipe
    from engine.train.runner import Run
    recipe = load_recipe(name, [*overrides, f"epochs={epochs}", f"compile={str(compiled).lower()}"])
    start = time.perf_counter()
    Run(recipe, folder, "cpu").train()
    with open(folder / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f)), time.perf_counter() - start


def first_step(name: str, overrides: list[str], folder: Path) -> float:
    """Largest relative difference, eager against compiled, of one batch's loss and gradients
    from the same freshly built weights."""
    import copy

    import torch.nn.functional as F

    from engine.train.loader import train_batches
    from engine.train.recipe import load_recipe
    from engine.train.runner import Run
    run = Run(load_recipe(name, overrides), folder, "cpu")
    _, (images, labels) = next(iter(train_batches(run.train_set, 64, 0, 0, 0, 0, 1, 0)))
    eager = run.procedure.model.train()
    compiled = copy.deepcopy(eager)
    compiled.compile()
    worst = 0.0
    results = []
    for model in (eager, compiled):
        model.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        results.append([loss.detach(), *(p.grad.clone() for p in model.parameters())])
    for a, b in zip(*results):
        worst = max(worst, float((a - b).abs().max() / a.abs().max().clamp_min(1e-12)))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", default="digits_cnn")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--set", action="append", dest="overrides",
                        default=None, help="recipe overrides (default: digits_cnn without dropout)")
    args = parser.parse_args(argv)
    overrides = args.overrides if args.overrides is not None else (
        ["spec={name: small_cnn, set: {dropout: 0.0}}"] if args.recipe == "digits_cnn" else [])
    with tempfile.TemporaryDirectory() as tmp:
        step = first_step(args.recipe, overrides, Path(tmp) / "step")
        eager, eager_s = run(args.recipe, args.epochs, False, Path(tmp) / "eager", overrides)
        compiled, compiled_s = run(args.recipe, args.epochs, True, Path(tmp) / "compiled", overrides)
    keys = [k for k in eager[0] if k.endswith("_loss")]
    print(f"one batch, same weights: largest relative difference of the loss or a gradient {step:.2e}")
    print(f"{args.recipe} {' '.join(overrides)}, {args.epochs} epochs: eager {eager_s:.1f} s, "
          f"compiled {compiled_s:.1f} s (wall, compiling included)")
    print("| epoch | " + " | ".join(f"{k} eager | {k} compiled" for k in keys) + " |")
    print("| --- " * (1 + 2 * len(keys)) + "|")
    worst = 0.0
    for a, b in zip(eager, compiled):
        cells = []
        for k in keys:
            x, y = float(a[k]), float(b[k])
            worst = max(worst, abs(x - y) / max(abs(x), 1e-12))
            cells += [f"{x:.4f}", f"{y:.4f}"]
        print(f"| {a['epoch']} | " + " | ".join(cells) + " |")
    print(f"largest relative difference of an epoch's loss: {worst:.2e}")
    return 0 if step < 1e-4 and worst < 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
