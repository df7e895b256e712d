"""Summary, render (to DOT) and diff: time beyond imports, memory, and scaling with graph size.

For vit_l16 and vgg19 it prints the median time of `engine summary`, `engine render` (DOT text)
and `engine diff` (each including the spec's load, resolve, validation and shape inference) and
how much resident memory they added: no weights are allocated, so it stays far below the
weights' size. Then it times the same on a generated spec with N and 10N blocks and prints the
10N/N ratio (linear growth gives ~10). Usage: python benchmarks/bench_views.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

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


def median_time(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def views(spec, other=None) -> dict:
    return {
        "summary": lambda: summarize(analyze(spec)),
        "render": lambda: render_dot(analyze(spec)),
        "diff": lambda: diff_specs(analyze(spec), analyze(other or spec)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--blocks", type=int, default=20, help="N of the scaling test")
    args = parser.parse_args()
    for spec, other in (("vit_l16", "vit_l16"), ("vgg19", "vgg19_bn")):
        for name, fn in views(spec, other).items():
            fn()  # warm: imports, registry, schema validator
            before = rss_mb()
            seconds = median_time(fn, args.rounds)
            grown = rss_mb() - before
            verdict = "ok" if seconds < 0.3 else "over 0.3 s"
            label = f"{name} {spec}" + (f" vs {other}" if name == "diff" else "")
            print(f"{label:<28} {seconds * 1e3:7.1f} ms  (+{grown:5.1f} MB resident)  {verdict}")
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for n in (args.blocks, 10 * args.blocks):
            paths[n] = Path(folder) / f"chain{n}.yaml"
            paths[n].write_text(CHAIN.format(n=n))
        print("\nscaling, a chain of N residual blocks (ratio of 10N to N; linear = 10):")
        for name in ("summary", "render", "diff"):
            small = median_time(views(paths[args.blocks])[name], args.rounds)
            large = median_time(views(paths[10 * args.blocks])[name], args.rounds)
            print(f"  {name:<8} N={args.blocks}: {small * 1e3:7.1f} ms   N={10 * args.blocks}: "
                  f"{large * 1e3:8.1f} ms   ratio {large / small:5.2f}")


if __name__ == "__main__":
    main()
