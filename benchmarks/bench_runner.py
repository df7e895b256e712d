"""The runner's training loop against a hand-written PyTorch loop: same model, data and batches.

Both train small_cnn on the digits training split for one epoch per round with AdamW; the
hand-written loop is what a PyTorch user writes (a DataLoader over the same dataset, zero_grad,
forward, cross-entropy, backward, step). Rounds alternate which goes first; the script prints the
median of per-round time ratios runner / hand-written - 1, the runner's overhead.
Goal: <= 3%. Usage: python benchmarks/bench_runner.py [--rounds 7] [--spec small_cnn]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from engine.train.recipe import load_recipe
from engine.train.runner import Run

RECIPE = """
name: bench
spec: {{name: {spec}, set: {{width: {width}}}}}
data: {{dataset: digits, batch_size: {batch}}}
procedure: classify
optimizer: {{name: adamw, lr: 0.001}}
epochs: 1000
checkpoint: {{every_epochs: 0, every_steps: 0}}
"""


def hand_written(model: torch.nn.Module, dataset, batch: int, seed: int) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    model.train()
    for images, labels in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        loss.item()  # the runner logs the loss every step; so does any real loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--spec", default="small_cnn")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(textwrap.dedent(RECIPE.format(spec=args.spec, width=args.width,
                                                      batch=args.batch)))
        run = Run(load_recipe(path), Path(folder) / "run")
        run.write_header()
        from engine import build
        model = build(args.spec, width=args.width)

        def runner_epoch():
            run.position.epoch += 1
            run.position.batch = 0
            run.train_epoch(every_steps=0)

        def hand_epoch():
            hand_written(model, run.train_set, args.batch, run.position.epoch)

        runner_epoch(), hand_epoch()  # warm up
        ratios, t_run, t_hand = [], [], []
        for r in range(args.rounds):
            first, second = (runner_epoch, hand_epoch) if r % 2 == 0 else (hand_epoch, runner_epoch)
            t1 = time.perf_counter()
            first()
            t2 = time.perf_counter()
            second()
            t3 = time.perf_counter()
            a, b = (t2 - t1, t3 - t2) if r % 2 == 0 else (t3 - t2, t2 - t1)
            t_run.append(a), t_hand.append(b), ratios.append(a / b)
    overhead = statistics.median(ratios) - 1
    print(f"{args.spec} (width {args.width}) on digits, batch {args.batch}, one epoch per round")
    print(f"runner       {statistics.median(t_run) * 1e3:8.1f} ms / epoch")
    print(f"hand-written {statistics.median(t_hand) * 1e3:8.1f} ms / epoch")
    print(f"runner overhead {overhead * 100:+.1f}% (goal <= 3%: {'ok' if overhead <= 0.03 else 'above'})")


if __name__ == "__main__":
    main()
