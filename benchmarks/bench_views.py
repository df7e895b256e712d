"""The views against their peers and their budgets: start-up, summary, render, diff, scaling.

Prints, one thread, medians of --rounds, process CPU time beside wall time (the machine may be
shared: CPU time is the steadier figure):
1. `engine --help` and `import engine` in a fresh process (CPU of the child);
2. `engine summary densenet121` (load, validation, shape inference, summary) against ptflops
   counting the same model's MACs with a real forward pass; ptflops is an optional benchmark
   dependency (`pip install ptflops`), not one of the project's: without it the peer is a
   plain torchvision forward with hooks counting conv/linear MACs, and the line says so;
3. summary, render (DOT text) and diff of vit_l16 and vgg19 after import, and the resident
   memory they added (no weights are allocated, so it stays far below the weights' size);
4. validate (load to shapes) and summary of a generated chain of 100, 1,000 and 10,000 residual
   blocks, with the ratio per 10x blocks (linear growth gives ~10).
No figure is asserted here or in any test. Usage: python benchmarks/bench_views.py [--rounds 5]
[--max-blocks 10000]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from engine.compiler import analyze
from engine.views.diff import diff_specs
from engine.views.render import render_dot
from engine.views.summary import summarize

CHAIN = """
name: chain{n}
params: {{n: {n}, width: 64}}
inputs: {{x: [B, $width, 16, 16]}}
blocks:
  unit:
    params: {{index: int}}
    nodes:
      conv1: {{op: conv, out: $width, k: 3, pad: 1, bias: false}}
      bn1:   {{op: batchnorm}}
      relu:  {{op: relu}}
      conv2: {{op: conv, out: $width, k: 3, pad: 1, groups: "${{2 ** (index % 4)}}"}}
      add:   {{op: add, in: [conv2, input]}}
graph:
  body: {{op: unit, repeat: $n, args: {{index: "${{i}}"}}}}
  pool: {{op: adaptive_avgpool, size: 1}}
"""


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


def timed(fn, rounds: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of `rounds` calls."""
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def ms(seconds: tuple[float, float]) -> str:
    return f"{seconds[1] * 1e3:8.1f} ms CPU ({seconds[0] * 1e3:8.1f} wall)"


def child_cpu(argv: list[str], rounds: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of a fresh process, its own CPU time (user + system)."""
    walls, cpus = [], []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
        walls.append(time.perf_counter() - wall)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def startup(rounds: int) -> None:
    print("start-up, a fresh process (budget: engine --help under 1 s of CPU):")
    python = sys.executable
    for label, argv in (("python (nothing)", [python, "-c", "pass"]),
                        ("import engine", [python, "-c", "import engine"]),
                        ("engine --help", [python, "-m", "engine.cli", "--help"]),
                        ("import torch (for scale)", [python, "-c", "import torch"])):
        print(f"  {label:<26} {ms(child_cpu(argv, rounds))}")


def peer_forward():
    """(what it is, a function counting densenet121's MACs by running it) for the comparison."""
    import torchvision
    model = torchvision.models.densenet121().eval()
    try:
        from ptflops import get_model_complexity_info
    except ImportError:
        return "torchvision forward + hooks (ptflops not installed)", _hooked_forward(model)
    return "ptflops forward", lambda: get_model_complexity_info(
        model, (3, 224, 224), as_strings=False, print_per_layer_stat=False, backend="pytorch")


def _hooked_forward(model):
    """A forward pass with hooks adding up conv and linear MACs: what ptflops does, by hand."""
    macs = [0]

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            macs[0] += output.numel() * module.weight[0].numel()
        elif isinstance(module, torch.nn.Linear):
            macs[0] += output.numel() * module.in_features

    def run():
        handles = [m.register_forward_hook(count) for m in model.modules()]
        with torch.no_grad():
            model(torch.zeros(1, 3, 224, 224))
        for h in handles:
            h.remove()
    return run


def against_peer(rounds: int) -> None:
    print("\nengine summary densenet121 against counting MACs with a forward pass (budget: 3x):")
    label, peer = peer_forward()
    peer()  # warm
    ours = lambda: summarize(analyze("densenet121"))  # noqa: E731
    ours()
    # interleaved rounds in alternating order, so a neighbour's load falls on both sides alike
    pairs = [tuple(reversed(timed_pair(peer, ours))) if i % 2 else timed_pair(ours, peer)
             for i in range(rounds)]
    engine_time = statistics.median(p[0][0] for p in pairs), statistics.median(p[0][1] for p in pairs)
    peer_time = statistics.median(p[1][0] for p in pairs), statistics.median(p[1][1] for p in pairs)
    ratios = sorted(p[1][1] / p[0][1] for p in pairs)
    print(f"  {'engine summary':<26} {ms(engine_time)}")
    print(f"  {label:<26} {ms(peer_time)}")
    print(f"  engine is {peer_time[1] / engine_time[1]:.1f}x faster in CPU time "
          f"({peer_time[0] / engine_time[0]:.1f}x in wall time; per-round CPU ratio "
          f"{ratios[0]:.1f}-{ratios[-1]:.1f})")


def timed_pair(first, second) -> tuple[tuple[float, float], tuple[float, float]]:
    """(wall, CPU) seconds of one call of each, in this order."""
    return timed(first, 1), timed(second, 1)


def views(spec, other=None) -> dict:
    return {
        "summary": lambda: summarize(analyze(spec)),
        "render": lambda: render_dot(analyze(spec)),
        "diff": lambda: diff_specs(analyze(spec), analyze(other or spec)),
    }


def bundled(rounds: int) -> None:
    print("\nviews after import (each from the spec's load; budget for vit_l16: 0.3 s):")
    for spec, other in (("vit_l16", "vit_l16"), ("vgg19", "vgg19_bn")):
        for name, fn in views(spec, other).items():
            fn()  # warm: imports, registry, schema validator
            before = rss_mb()
            seconds = timed(fn, rounds)
            grown = rss_mb() - before
            label = f"{name} {spec}" + (f" vs {other}" if name == "diff" else "")
            print(f"  {label:<26} {ms(seconds)}  (+{grown:5.1f} MB resident)")


def scaling(rounds: int, largest: int) -> None:
    print("\nscaling: validate (load to shapes) and summary of a chain of N residual blocks "
          "(5 layers each; linear growth gives a ratio of ~10 per 10x):")
    previous = None
    with tempfile.TemporaryDirectory() as folder:
        n = 100
        while n <= largest:
            path = Path(folder) / f"chain{n}.yaml"
            path.write_text(CHAIN.format(n=n))
            shaped = analyze(path)  # warm
            runs = max(1, rounds if n < 10_000 else rounds // 2)
            validate = timed(lambda p=path: analyze(p), runs)
            summary = timed(lambda s=shaped: summarize(s), runs)
            total = validate[1] + summary[1]
            ratio = f"ratio {total / previous:5.2f}" if previous else ""
            print(f"  N={n:<6} validate {ms(validate)}  summary {ms(summary)}  {ratio}")
            previous, n = total, n * 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-blocks", type=int, default=10_000, help="largest N of the scaling")
    args = parser.parse_args()
    torch.set_num_threads(1)
    startup(args.rounds)
    against_peer(args.rounds)
    bundled(args.rounds)
    scaling(args.rounds, args.max_blocks)


if __name__ == "__main__":
    main()
