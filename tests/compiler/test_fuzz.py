"""Validation is total: mutants of every bundled spec and recipe (tests/fuzz.py) each end in a
located error or a clean `ok`, never an internal error, an escaped exception, a traceback or a
hang, and a spec that validates also builds and generates code.

Seeded, so a failure reproduces: `python benchmarks/fuzz_validate.py --seed N --count 1 --show`.
benchmarks/fuzz_validate.py runs the same harness on 5,000 mutants.
"""

from __future__ import annotations

import collections

from tests.fuzz import Mutator, run_one, slots, sources

MUTANTS = 400
FIRST_SEED = 10_000  # the benchmark starts at 0: the suite covers other mutants


def test_mutants_of_the_bundled_files_never_reach_an_internal_error(tmp_path):
    outcomes = [run_one(seed, tmp_path) for seed in range(FIRST_SEED, FIRST_SEED + MUTANTS)]
    failed = [o for o in outcomes if o.failed]
    report = "\n".join(f"seed {o.seed} ({o.source}): {o.code}\n{o.stderr[-800:]}" for o in failed)
    assert not failed, f"{len(failed)} of {MUTANTS} mutants failed:\n{report}"
    codes = collections.Counter(o.code for o in outcomes)
    # the mutants do reach the checks: most are refused, some are still valid files
    assert codes[1] > MUTANTS // 2 and codes[0] > 0, codes
    assert len({o.source for o in outcomes}) > 100  # parents drawn from the whole catalogue


def test_a_mutant_is_reproducible_from_its_seed_and_never_cyclic():
    text = sources()[0].read_text(encoding="utf-8")
    assert Mutator(7).mutant(text) == Mutator(7).mutant(text)
    assert len({Mutator(seed).mutant(text) for seed in range(20)}) > 10
    import yaml
    for seed in range(50):  # grafts are copies: every mutant is a tree (or not YAML at all)
        try:
            root = yaml.compose(Mutator(seed).mutant(text), Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            continue
        children = [id(s.get()) for s in slots(root)] if root is not None else []
        shared = {i for i in children if children.count(i) > 1}
        original = yaml.compose(text, Loader=yaml.SafeLoader)
        aliased = [id(s.get()) for s in slots(original)]
        assert len(shared) <= len({i for i in aliased if aliased.count(i) > 1})
