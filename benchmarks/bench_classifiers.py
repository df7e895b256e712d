"""Engine-built classifiers against torchvision's hand-written ones, measured interleaved in one process.

Prints, per model, the median of per-round ratios torchvision_time / engine_time (higher is
better for the engine; 1.0 = equal) for
  - forward+backward of one training step on a random batch (same weights in both models), and
  - build time: `engine.build(spec)` (load, resolve, validate, infer shapes, build, initialise)
    against torchvision's constructor.
Goal: >= 0.98 for both. Usage: python benchmarks/bench_classifiers.py [--rounds 7] [--batch 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

import engine

MODELS = {"resnet50": torchvision.models.resnet50, "vit_b16": torchvision.models.vit_b_16}
GOAL = 0.98


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def train_step(model: torch.nn.Module, x: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()


def interleaved(a, b, rounds: int, warmup: int) -> tuple[float, float, float]:
    """Median of a/b time ratios over rounds (order alternating), plus both medians."""
    for _ in range(warmup):
        a(), b()
    ta, tb, ratios = [], [], []
    for r in range(rounds):
        first, second = (a, b) if r % 2 == 0 else (b, a)
        t1, t2 = timed(first), timed(second)
        t_a, t_b = (t1, t2) if r % 2 == 0 else (t2, t1)
        ta.append(t_a), tb.append(t_b), ratios.append(t_a / t_b)
    return statistics.median(ratios), statistics.median(ta), statistics.median(tb)


def bench(name: str, rounds: int, batch: int) -> tuple[float, float]:
    ref = MODELS[name]().train()
    model = engine.build(name).train()
    model.load_state_dict(ref.state_dict())
    x = torch.randn(batch, 3, 224, 224)
    speed, t_ref, t_eng = interleaved(lambda: train_step(ref, x), lambda: train_step(model, x),
                                      rounds, warmup=2)
    print(f"{name:<9} forward+backward (batch {batch}): torchvision {t_ref * 1e3:7.1f} ms, "
          f"engine {t_eng * 1e3:7.1f} ms, ratio {speed:.3f}")
    build, b_ref, b_eng = interleaved(MODELS[name], lambda: engine.build(name), rounds, warmup=1)
    print(f"{name:<9} build:                        torchvision {b_ref * 1e3:7.1f} ms, "
          f"engine {b_eng * 1e3:7.1f} ms, ratio {build:.3f}")
    return speed, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.rounds} interleaved rounds; ratio = torchvision time / engine time")
    results = {name: bench(name, args.rounds, args.batch) for name in args.models}
    print()
    for name, (speed, build) in results.items():
        verdict = "ok" if min(speed, build) >= GOAL else "below goal"
        print(f"{name:<9} speed ratio {speed:.3f}  build ratio {build:.3f}  (goal >= {GOAL}: {verdict})")


if __name__ == "__main__":
    main()
