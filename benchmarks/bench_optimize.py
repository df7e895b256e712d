"""The optimized inference build (`engine.build(spec, optimize=True)`) against torchvision eager.

For resnet50 and densenet121 at batch 1 and 16 on CPU (one thread unless --threads), times
three models holding the same weights (batch norms given random statistics): torchvision's
eager model, the engine's plain build and its optimize=True build, all in eval mode under
inference_mode. Each round times every model once (after warm-up), in an order that alternates
between rounds; the figure is process CPU time (wall time beside it). Prints a markdown table of
medians and of the per-round ratio torchvision / optimized (median, min-max over the rounds),
and the largest output difference relative to max|out|. Goal (issue 25): ratio >= 1.25.

    python benchmarks/bench_optimize.py [--rounds 7] [--threads 1] [--models resnet50 densenet121]
        [--batches 1 16] [--ablate]      # --ablate: also the build with folds only (no packing)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.oracle, from a checkout

import engine  # noqa: E402
from engine.compiler.build import build as build_modules  # noqa: E402
from tests.oracle import randomise_batchnorm  # noqa: E402

GOAL = 1.25


def models(name: str, ablate: bool) -> dict[str, torch.nn.Module]:
    """torchvision eager, engine plain and engine optimized, with one set of weights (and with
    `ablate`, the optimized build without packing: folds and scale-and-shifts only)."""
    ref = getattr(torchvision.models, name)().eval()
    randomise_batchnorm(ref)
    shaped = engine.analyze(name)
    plain = build_modules(shaped).eval()
    engine.load_reference_state_dict(plain, ref.state_dict(), name)
    nets = {"torchvision": ref, "engine": plain, "optimized": engine.optimize(plain, shaped)[0]}
    if ablate:
        nets["folded only"] = engine.optimize(plain, shaped, pack=False)[0]
    return nets


def timed(model: torch.nn.Module, x: torch.Tensor, calls: int) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) per forward, over `calls` forwards."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        model(x)
    return (time.process_time() - cpu) / calls, (time.perf_counter() - wall) / calls


def rounds_of(nets: dict, x: torch.Tensor, rounds: int, calls: int) -> dict[str, list]:
    """Per model, the (cpu, wall) of each round; the order reverses every other round."""
    names = list(nets)
    for name in names:  # warm-up: oneDNN primitive caches, allocator
        timed(nets[name], x, 2)
    times: dict[str, list] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(timed(nets[name], x, calls))
    return times


def max_difference(nets: dict, x: torch.Tensor) -> tuple[float, float]:
    """max|optimized - plain| and max|optimized - torchvision|, each over max|plain|."""
    out = {name: nets[name](x) for name in ("torchvision", "engine", "optimized")}
    scale = out["engine"].abs().max()
    return (float((out["optimized"] - out["engine"]).abs().max() / scale),
            float((out["optimized"] - out["torchvision"]).abs().max() / scale))


def row(name: str, batch: int, times: dict, diffs: tuple[float, float]) -> str:
    cpu = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    wall = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    ratios = [a[0] / b[0] for a, b in zip(times["torchvision"], times["optimized"])]
    plain = [a[0] / b[0] for a, b in zip(times["torchvision"], times["engine"])]
    return (f"| {name} | {batch} | {cpu['torchvision'] * 1e3:.1f} | {cpu['engine'] * 1e3:.1f} | "
            f"{cpu['optimized'] * 1e3:.1f} | {wall['torchvision'] * 1e3:.1f} / "
            f"{wall['optimized'] * 1e3:.1f} | {statistics.median(plain):.2f} | "
            f"**{statistics.median(ratios):.2f}** ({min(ratios):.2f}-{max(ratios):.2f}) | "
            f"{diffs[0]:.1e} / {diffs[1]:.1e} |")


def ratio(times: dict, name: str) -> str:
    """Median (min-max) over the rounds of torchvision's CPU time over `name`'s."""
    ratios = [a[0] / b[0] for a, b in zip(times["torchvision"], times[name])]
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--models", nargs="+", default=["resnet50", "densenet121"])
    parser.add_argument("--ablate", action="store_true", help="also time the optimized build "
                        "without packing (folds only), printed after the table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds, "
          f"CPU time in ms (median); ratio = torchvision / optimized, goal >= {GOAL}\n")
    print("| model | batch | torchvision | engine plain | engine optimized | wall tv / opt | "
          "tv / plain | tv / optimized (min-max) | max diff opt-plain / opt-tv |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ablation = []
    with torch.inference_mode():
        for name in args.models:
            nets = models(name, args.ablate)
            for batch in args.batches:
                x = torch.randn(batch, 3, 224, 224)
                times = rounds_of(nets, x, args.rounds, calls=max(1, 8 // batch))
                print(row(name, batch, times, max_difference(nets, x)), flush=True)
                if args.ablate:
                    ablation.append(f"{name} batch {batch}: tv / folded only " + ratio(
                        times, "folded only") + ", tv / optimized " + ratio(times, "optimized"))
    print("\n".join(["", *ablation]) if ablation else "")


if __name__ == "__main__":
    main()
