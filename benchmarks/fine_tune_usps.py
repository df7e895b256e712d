"""The figures of docs/weights.md: one epoch on USPS from the MNIST classifier against one epoch
from random initialisation, and the MNIST classifier on USPS before fine-tuning.

    python benchmarks/fine_tune_usps.py [--mnist-run runs/mnist_cnn-...] [--seed 0]

Without `--mnist-run` it first trains recipes/mnist_cnn.yaml (a few minutes on one thread).
Each figure is the USPS test accuracy (2,007 digits) of the run's last checkpoint, evaluated as
`engine eval` does. Needs the MNIST and USPS data (../shared/data or $ENGINE_DATA).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def train(recipe: str, overrides: list[str], output: Path) -> Path:
    """Train a recipe into a new run folder under `output`; its last checkpoint."""
    from engine.train.recipe import load_recipe
    from engine.train.runner import Run, new_run_folder
    loaded = load_recipe(recipe, overrides)
    folder = new_run_folder(loaded, str(output))
    Run(loaded, folder, "cpu").train()
    return folder / "checkpoints" / "last.pt"


def usps_accuracy(checkpoint: Path) -> float:
    from engine.train.runner import open_checkpoint
    run = open_checkpoint("usps_cnn", [], str(checkpoint), "cpu")
    return run.evaluate("test")["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-run", help="a finished mnist_cnn run folder to start from")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    seed = [f"seed={args.seed}"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        mnist = (Path(args.mnist_run) / "checkpoints" / "last.pt" if args.mnist_run
                 else train("mnist_cnn", seed, out))
        fine = train("usps_from_mnist", [*seed, f"weights={mnist}"], out)
        scratch = train("usps_cnn", [*seed, "epochs=1"], out)
        rows = [("one epoch from the MNIST run (usps_from_mnist)", usps_accuracy(fine)),
                ("one epoch from random init (usps_cnn, epochs=1)", usps_accuracy(scratch)),
                ("the MNIST run, not fine-tuned", usps_accuracy(mnist))]
    print(f"\nUSPS test accuracy, seed {args.seed}:")
    for name, accuracy in rows:
        print(f"  {name:50} {accuracy:.2%}")


if __name__ == "__main__":
    main()
