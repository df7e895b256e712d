"""benchmarks/bench_classifiers.py: the interleaving and the noise band (no time is asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_classifiers import Result, interleaved  # noqa: E402


def work() -> int:
    return sum(range(20_000))  # some CPU time, so no ratio divides by zero


def test_every_side_runs_equally_often_and_each_leads_in_turn():
    calls: list[str] = []
    sides = {name: (lambda name=name: (calls.append(name), work())) for name in ("ref", "eng", "ctl")}
    result = interleaved(sides["ref"], sides["eng"], rounds=6, warmup=1, calls=2, control=sides["ctl"])
    assert [calls.count(name) for name in sides] == [1 + 6 * 2] * 3
    rounds = [calls[3 + 6 * r: 3 + 6 * (r + 1)] for r in range(6)]
    leaders = [r[0] for r in rounds]
    assert sorted(leaders) == ["ctl", "ctl", "eng", "eng", "ref", "ref"]  # each side leads twice
    assert len(result.ratios) == len(result.control) == 6


def test_without_a_control_there_is_no_band():
    result = interleaved(work, work, rounds=3, warmup=0)
    assert result.control is None and len(result.ratios) == 3


def test_a_cell_below_goal_is_within_noise_only_where_an_identical_copy_measured_as_low():
    def cell(ratios, control):
        return Result(ratios, 1.0, 1.0, 1.0, 1.0, control)
    assert cell([1.01, 0.99, 1.02], None).verdict(1.00) == "ok"
    assert cell([0.97, 0.96, 0.98], [0.95, 1.0, 1.04]).verdict(1.00) == "within noise"
    assert cell([0.97, 0.96, 0.98], [0.98, 1.0, 1.02]).verdict(1.00) == "below"
    assert cell([0.97, 0.96, 0.98], None).verdict(1.00) == "below"
