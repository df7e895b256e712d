"""Engine-built classifiers against torchvision's hand-written ones, measured interleaved in one process.

Prints ratios torchvision_time / engine_time (higher is better for the engine; 1.0 = equal), each
the median of per-round ratios with the min-max range beside it, for
  - inference (eval, no_grad) at batch 1 and 16, plain and channels_last for the conv nets,
  - forward+backward of one training step on a random batch, and
  - build time: `engine.build(spec)` (load, resolve, validate, infer shapes, build, initialise)
    against torchvision's constructor (skip with --no-build).
Both models hold the same weights (torchvision's state_dict loaded into the engine's model). The
fair way: one thread by default (--threads), process CPU time (time.process_time, which other
jobs on a shared machine do not inflate) for the ratios with wall time printed beside it, warm-up
calls first, then rounds that alternate which model runs first.
--control also times a second torchvision copy with the same weights in every inference and
training round: its ratio (tv/tv) is what a model identical to the reference measures as, the
noise of the figure on this machine. A cell below its goal is "within noise" where its median
is no lower than the worst tv/tv round, "below" otherwise.
Goals: inference >= 1.00, training >= 0.99, build >= 0.98.
Usage: python benchmarks/bench_classifiers.py [--models resnet50 vit_b16] [--rounds 7] [--threads 1]
       [--control]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch
import torchvision

import engine

MODELS = {"resnet50": torchvision.models.resnet50, "densenet121": torchvision.models.densenet121,
          "convnext_tiny": torchvision.models.convnext_tiny, "vit_b16": torchvision.models.vit_b_16}
CONV_NETS = {"resnet50", "densenet121", "convnext_tiny"}  # the ones channels_last applies to
GOALS = {"inference": 1.00, "training": 0.99, "build": 0.98}


@dataclass
class Result:
    """Per-round ratios (CPU time) and the median times of both sides."""

    ratios: list[float]
    cpu_ref: float
    cpu_eng: float
    wall_ref: float
    wall_eng: float
    control: list[float] | None = None  # reference / identical copy, per round: the noise band

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def text(self) -> str:
        control = f"  tv/tv {spread(self.control)}" if self.control else ""
        return (f"{spread(self.ratios)}  cpu ms: tv {self.cpu_ref * 1e3:8.1f} eng "
                f"{self.cpu_eng * 1e3:8.1f}  wall ms: tv {self.wall_ref * 1e3:8.1f} eng "
                f"{self.wall_eng * 1e3:8.1f}{control}")

    def verdict(self, goal: float) -> str:
        """ok at or above the goal; within noise where an identical copy measured as low."""
        if self.ratio >= goal:
            return "ok"
        if self.control and self.ratio >= min(self.control):
            return "within noise"
        return "below"


def spread(ratios: list[float]) -> str:
    """'median [min-max]' of per-round ratios."""
    return f"{statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]"


def timed(fn, calls: int) -> tuple[float, float]:
    """(process CPU time, wall time) of `calls` calls of fn, per call."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.process_time() - cpu) / calls, (time.perf_counter() - wall) / calls


def interleaved(ref, eng, rounds: int, warmup: int, calls: int = 1, control=None) -> Result:
    """Rounds of `calls` calls of each side, the order rotating; ratio = ref / eng CPU time.

    With `control` (a second copy of the reference), each round times it too and the result
    carries the reference / control ratios: what an identical model measures as, the noise band.
    """
    sides = {"ref": ref, "eng": eng, **({"ctl": control} if control else {})}
    for _ in range(warmup):
        for fn in sides.values():
            fn()
    times: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
    names = list(sides)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]  # each side leads in turn
        for side in (order if r // len(names) % 2 == 0 else order[::-1]):
            times[side].append(timed(sides[side], calls))

    def median(side: str, i: int) -> float:
        return statistics.median(t[i] for t in times[side])

    def ratios(side: str) -> list[float]:
        return [ref[0] / other[0] for ref, other in zip(times["ref"], times[side])]
    return Result(ratios("eng"), median("ref", 0), median("eng", 0), median("ref", 1), median("eng", 1),
                  ratios("ctl") if control else None)


def models(name: str, train: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    """torchvision's model and the engine's, with the same weights."""
    ref = MODELS[name]().train(train)
    model = engine.build(name).train(train)
    engine.load_reference_state_dict(model, ref.state_dict(), name, strict=True)
    return ref, model


def twin_of(name: str, ref: torch.nn.Module, control: bool) -> torch.nn.Module | None:
    """With `control`, a second torchvision copy with ref's weights and mode: the noise band."""
    if not control:
        return None
    twin = MODELS[name]().train(ref.training)
    twin.load_state_dict(ref.state_dict())
    return twin


def inference(name: str, batch: int, channels_last: bool, rounds: int, control: bool) -> Result:
    ref, model = models(name, train=False)
    twin = twin_of(name, ref, control)
    x = torch.randn(batch, 3, 224, 224)
    if channels_last:
        ref, model = ref.to(memory_format=torch.channels_last), model.to(memory_format=torch.channels_last)
        twin = twin.to(memory_format=torch.channels_last) if twin is not None else None
        x = x.contiguous(memory_format=torch.channels_last)

    def run(m):
        with torch.no_grad():
            m(x)
    calls = 3 if batch == 1 else 1  # batch 16 is long enough in one call: keeps rounds short
    return interleaved(lambda: run(ref), lambda: run(model), rounds, warmup=2, calls=calls,
                       control=(lambda: run(twin)) if twin is not None else None)


def training(name: str, batch: int, rounds: int, control: bool) -> Result:
    ref, model = models(name, train=True)
    twin = twin_of(name, ref, control)
    x = torch.randn(batch, 3, 224, 224)

    def step(m):
        m.zero_grad(set_to_none=True)
        m(x).sum().backward()
    return interleaved(lambda: step(ref), lambda: step(model), rounds, warmup=2,
                       control=(lambda: step(twin)) if twin is not None else None)


def build_time(name: str, rounds: int) -> Result:
    return interleaved(MODELS[name], lambda: engine.build(name), rounds, warmup=1)


def bench(name: str, args) -> dict[str, Result]:
    """Every measurement of one model, printed as it completes."""
    cells = [(f"inference b{b}{' cl' if cl else ''}",
              lambda b=b, cl=cl: inference(name, b, cl, args.rounds, args.control))
             for b in (1, 16) for cl in ((False, True) if name in CONV_NETS else (False,))]
    cells.append((f"training b{args.batch}", lambda: training(name, args.batch, args.rounds, args.control)))
    if args.build:
        cells.append(("build", lambda: build_time(name, args.rounds)))
    results = {}
    for label, measure in cells:
        results[label] = measure()
        print(f"{name:<13} {label:<18} {results[label].text()}", flush=True)
    return results


def table(results: dict[str, dict[str, Result]]) -> None:
    """The inference ratios as the issue's table, then training and build per model."""
    columns = ["inference b1", "inference b1 cl", "inference b16", "inference b16 cl"]
    print("\n| inference | batch 1 | batch 1, channels_last | batch 16 | batch 16, channels_last |")
    print("| --- | --- | --- | --- | --- |")
    for name, cells in results.items():
        row = [spread(cells[c].ratios) + (f" (tv/tv {spread(cells[c].control)})" if cells[c].control else "")
               if c in cells else "–" for c in columns]
        print(f"| {name} | " + " | ".join(row) + " |")
    print()
    for name, cells in results.items():
        label, worst = min(((label, r) for label, r in cells.items() if label.startswith("inference")),
                           key=lambda item: item[1].ratio)
        verdicts = [f"inference min {worst.ratio:.3f} at {label[10:]} ({worst.verdict(GOALS['inference'])})"]
        for kind in ("training", "build"):
            found = [r for label, r in cells.items() if label.startswith(kind)]
            if found:
                verdicts.append(f"{kind} {found[0].ratio:.3f} ({found[0].verdict(GOALS[kind])})")
        print(f"{name:<13} " + ", ".join(verdicts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median of these)")
    parser.add_argument("--batch", type=int, default=4, help="training batch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the fair default)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--no-build", dest="build", action="store_false", help="skip build times")
    parser.add_argument("--control", action="store_true",
                        help="also time a second torchvision copy in every inference and training round: the "
                             "ratio an identical model gets (tv/tv) is the measurement's noise")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} interleaved "
          "rounds; ratio = torchvision time / engine time (process CPU), median [min-max]")
    results = {name: bench(name, args) for name in args.models}
    table(results)


if __name__ == "__main__":
    main()
