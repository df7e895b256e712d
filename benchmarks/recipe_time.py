"""How long a bundled recipe's whole training takes on this machine, from a short timed run.

    python benchmarks/recipe_time.py edsr_x2 vdsr_x2 [--steps 20] [--threads 2]

For each recipe it trains `--steps` + 3 steps and 3 steps (the same set-up, data and first
steps), in that order, without evaluation; the difference of the two wall times is the time of
`--steps` steady steps. The estimate is that step time x the recipe's steps (epochs x batches
per epoch); the validation passes are not in it. Its reference is the same recipe's
measured step, so the figure holds for the machine and the load it runs under: run it on an
otherwise idle machine to check a recipe's time budget (the issue's "CPU recipe of at most 30
minutes").
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed_run(name: str, steps: int, folder: Path) -> tuple[float, int]:
    """Wall seconds of `steps` training steps of recipe `name` (set-up included), and the
    recipe's batches per epoch."""
    from engine.train.recipe import load_recipe
    from engine.train.runner import Run
    recipe = load_recipe(name, ["epochs=null", f"steps={steps}", "eval.every_epochs=0",
                                "checkpoint={every_epochs: 0, every_steps: 0}"])
    start = time.perf_counter()
    run = Run(recipe, folder, "cpu")
    run.train()
    batch = recipe["data"]["batch_size"]
    return time.perf_counter() - start, math.ceil(len(run.train_set) / batch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import torch

    from engine.train.recipe import load_recipe
    torch.set_num_threads(args.threads)
    print(f"| recipe | s / step ({args.threads} threads) | steps | estimated training |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for k, name in enumerate(args.recipes):
            long, per_epoch = timed_run(name, args.steps + 3, Path(tmp) / f"{k}a")
            short, _ = timed_run(name, 3, Path(tmp) / f"{k}b")
            per_step = max(long - short, 0.0) / args.steps
            total = per_epoch * load_recipe(name)["epochs"]
            print(f"| `{name}` | {per_step:.3f} | {total} | {per_step * total / 60:.1f} min |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
