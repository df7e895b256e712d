"""How `engine validate` holds up against mutants of every bundled spec and recipe.

    python benchmarks/fuzz_validate.py [--count 5000] [--seed 0] [--show]

Each mutant (tests/fuzz.py: one to three random edits of a bundled file's YAML tree, sometimes a
text edit) is validated by the CLI in-process; a spec that validates is also built on the meta
device and turned into code. It prints how many ended `ok` (exit 0), with a located error
(exit 1), and how many failed: an internal error (exit 3), an exception out of the CLI, a
traceback, a hang (over 30 s) or a crash after validation said ok. `--show` prints each failure's
mutant and output. The in-suite test (tests/compiler/test_fuzz.py) runs 400 other seeds.
"""

from __future__ import annotations

import argparse
import collections
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--show", action="store_true", help="print each failing mutant")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(1)
    from tests.fuzz import Mutator, run_one, sources
    codes: collections.Counter = collections.Counter()
    slowest = (0.0, -1)
    failed = []
    wall, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seed, args.seed + args.count):
            outcome = run_one(seed, Path(folder))
            codes[outcome.code if outcome.code in (0, 1) else "failed"] += 1
            slowest = max(slowest, (outcome.seconds, seed))
            if outcome.failed:
                failed.append(outcome)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.count} mutants (seeds {args.seed}..{args.seed + args.count - 1}) of "
          f"{len(sources())} bundled files")
    print(f"  ok (exit 0):           {codes[0]}")
    print(f"  located error (1):     {codes[1]}")
    print(f"  internal error, hang, traceback or crash after ok: {codes['failed']}")
    print(f"  time: {wall:.1f} s wall, {cpu:.1f} s CPU ({1000 * cpu / args.count:.1f} ms a "
          f"mutant; slowest {slowest[0]:.2f} s, seed {slowest[1]}); peak memory {peak:.0f} MB")
    for outcome in failed:
        print(f"\nseed {outcome.seed} ({outcome.source}): {outcome.code}\n{outcome.stderr[-1500:]}")
        if args.show:
            parent = random.Random(outcome.seed).choice(sources())
            print(Mutator(outcome.seed).mutant(parent.read_text(encoding="utf-8")))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
