"""The runner's epoch against a hand-written PyTorch epoch doing the same work.

Both train small_cnn on the digits training split for one epoch per round with AdamW and then
evaluate it on the validation split; the hand-written side is what a PyTorch user writes for that
job, given the same work as the runner:
  - the same batches in the same order (the runner's own `train_batches` / `eval_batches`, so
    the data path is not what is measured; a DataLoader costs about the same),
  - per step: zero_grad, forward, cross-entropy, backward, step, and the loss and accuracy read
    back as Python floats (the runner logs both every step),
  - per epoch: evaluation in eval mode under no_grad, per-sample loss and accuracy summed, and one
    CSV row appended.
What the runner adds on top (progress bar, TensorBoard scalars, the metrics row's bookkeeping) is
the overhead measured. Rounds are interleaved and alternate which side goes first; one thread by
default. Printed: the medians (and min-max) of process CPU time and wall time per epoch, and the
median of per-round CPU ratios runner / hand-written - 1, the runner's overhead.
Goal: <= 3%. Usage: python benchmarks/bench_runner.py [--rounds 9] [--threads 1]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.train.loader import eval_batches, train_batches
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
eval: {{metrics: [accuracy], split: val}}
"""


def hand_written_epoch(model: torch.nn.Module, optimizer, train_set, val_set, batch: int,
                       epoch: int, log: Path) -> None:
    model.train()
    loss_sum = acc_sum = seen = 0.0
    for _, (images, labels) in train_batches(train_set, batch, 0, epoch):
        optimizer.zero_grad(set_to_none=True)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(labels)
        acc_sum += (logits.argmax(-1) == labels).float().mean().item() * len(labels)
        seen += len(labels)
    model.eval()
    val_loss = val_acc = count = 0.0
    with torch.no_grad():
        for images, labels in eval_batches(val_set, batch):
            logits = model(images)
            val_loss += float(F.cross_entropy(logits, labels, reduction="none").sum())
            val_acc += float((logits.argmax(-1) == labels).float().sum())
            count += len(labels)
    with open(log, "a", newline="") as f:
        csv.writer(f).writerow([epoch, loss_sum / seen, acc_sum / seen, val_loss / count,
                                val_acc / count])


def measure(fn) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def spread(values: list[float]) -> str:
    return (f"{statistics.median(values) * 1e3:7.1f} ms "
            f"({min(values) * 1e3:.1f}-{max(values) * 1e3:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--spec", default="small_cnn")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(textwrap.dedent(RECIPE.format(spec=args.spec, width=args.width,
                                                      batch=args.batch)))
        run = Run(load_recipe(path), Path(folder) / "run")
        run.write_header()
        from engine.train.tracking import Tracker
        run.tracker = Tracker(run.folder, 10, 0)  # as `train()` sets it up: TensorBoard on
        from engine import build
        model = build(args.spec, width=args.width)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        log, epoch = Path(folder) / "hand.csv", [0]

        def runner_epoch():
            run.position.batch = 0
            run.train_epoch(every_steps=0)
            run.end_epoch()

        def hand_epoch():
            hand_written_epoch(model, optimizer, run.train_set, run.eval_sets["val"], args.batch,
                               epoch[0], log)
            epoch[0] += 1

        runner_epoch(), hand_epoch()  # warm up
        ratios, cpu_run, cpu_hand, wall_run, wall_hand = [], [], [], [], []
        for r in range(args.rounds):
            if r % 2 == 0:
                (a_cpu, a_wall), (b_cpu, b_wall) = measure(runner_epoch), measure(hand_epoch)
            else:
                (b_cpu, b_wall), (a_cpu, a_wall) = measure(hand_epoch), measure(runner_epoch)
            cpu_run.append(a_cpu), cpu_hand.append(b_cpu)
            wall_run.append(a_wall), wall_hand.append(b_wall)
            ratios.append(a_cpu / b_cpu)
        run.tracker.close()
    overhead = statistics.median(ratios) - 1
    print(f"{args.spec} (width {args.width}) on digits, batch {args.batch}, one epoch + validation "
          f"per round, {args.rounds} rounds, {args.threads} thread(s); median (min-max)")
    print(f"runner        CPU {spread(cpu_run)}   wall {spread(wall_run)}")
    print(f"hand-written  CPU {spread(cpu_hand)}   wall {spread(wall_hand)}")
    print(f"runner overhead (CPU) {overhead * 100:+.1f}% (per-round range "
          f"{(min(ratios) - 1) * 100:+.1f}% to {(max(ratios) - 1) * 100:+.1f}%; goal <= 3%: "
          f"{'ok' if overhead <= 0.03 else 'above'})")


if __name__ == "__main__":
    main()
