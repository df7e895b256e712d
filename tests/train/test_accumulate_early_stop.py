"""`accumulate: N` (N micro-batches per optimizer step equal one N-times larger batch) and
`early_stop:` (a run stops when its validation metric stops improving), on the embedded digits."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest

from engine.cli import main
from engine.train.checkpoint import load_checkpoint
from engine.train.recipe import load_recipe
from engine.train.runner import Run
from tests.train.test_train import MLP  # the digits MLP every training test shares

RECIPE = """
name: tiny
spec: mlp.yaml
data: {{dataset: digits, batch_size: {batch}}}
procedure: classify
optimizer: {{name: sgd, lr: {lr}, momentum: 0.9}}
seed: 3
"""


def write(tmp_path: Path, batch: int = 64, lr: str = "0.1", extra: str = "") -> Path:
    (tmp_path / "mlp.yaml").write_text(textwrap.dedent(MLP))
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(RECIPE.format(batch=batch, lr=lr)) + textwrap.dedent(extra))
    return path


def rows(folder: Path) -> list[dict]:
    with (folder / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _trained(tmp_path: Path, name: str, batch: int, accumulate: int, extra: str = "") -> Run:
    folder = tmp_path / name
    folder.mkdir()
    recipe = load_recipe(write(folder, batch, extra=f"accumulate: {accumulate}\nsteps: 3\n"
                                                  f"scheduler: {{name: cosine}}\nclip_grad: 1.0\n{extra}"))
    run = Run(recipe, folder / "run", "cpu")
    run.train()
    return run


def test_four_micro_batches_equal_one_four_times_larger_batch(tmp_path):
    big = _trained(tmp_path, "big", 64, 1)
    small = _trained(tmp_path, "small", 16, 4)
    assert big.position.step == small.position.step == 3
    assert small.position.epoch == 1 and big.total_steps == small.total_steps == 3
    assert big.procedure.lr() == pytest.approx(small.procedure.lr())  # the schedule saw 3 steps
    for (name, a), b in zip(big.procedure.model.named_parameters(),
                            small.procedure.model.parameters(), strict=True):
        assert (a - b).abs().max().item() < 1e-6, name


def test_steps_and_checkpoints_count_optimizer_steps(tmp_path):
    recipe = load_recipe(write(tmp_path, 16, extra="accumulate: 4\nepochs: 1\n"
                                                   "checkpoint: {every_steps: 5}\n"))
    run = Run(recipe, tmp_path / "run", "cpu")
    batches = -(-len(run.train_set) // 16)
    assert run.total_steps == -(-batches // 4)
    seen = []
    save = run.save
    run.save = lambda name: (seen.append((name, run.position.step, run.position.batch)), save(name))
    run.train()
    assert run.position.step == run.total_steps
    mid = [(step, batch) for name, step, batch in seen if name == "last" and batch]
    # only after an optimizer step (the epoch's last group is shorter: 79 batches)
    assert mid and all(step % 5 == 0 and batch == min(step * 4, batches) for step, batch in mid)
    assert rows(tmp_path / "run")[-1]["step"] == str(run.total_steps)


def test_a_metric_that_cannot_improve_stops_the_run_early(tmp_path, capsys):
    # min_delta 10: no epoch beats the first by that much, so the second evaluation stops it
    recipe = write(tmp_path, lr="1.0e-9", extra="epochs: 5\nearly_stop: {metric: val_loss, patience: 1, "
                                            "mode: min, min_delta: 10}\n")
    out = tmp_path / "runs"
    assert main(["train", str(recipe), "--output", str(out)]) == 0
    assert "early stop: val_loss has not improved for 1 evaluations" in capsys.readouterr().out
    folder = next(out.iterdir())
    table = rows(folder)
    assert [r["epoch"] for r in table] == ["1", "2"]
    assert not table[0]["stopped"] and "val_loss has not improved" in table[1]["stopped"]
    assert load_checkpoint(folder / "checkpoints/last.pt")["position"]["stopped"]
    # resuming a run that stopped early trains no further
    assert main(["train", str(recipe), "--resume", str(folder)]) == 0
    assert "stopped early" in capsys.readouterr().out
    assert rows(folder) == table


def test_patience_counts_evaluations_without_improvement(tmp_path):
    recipe = load_recipe(write(tmp_path, extra="epochs: 1\nearly_stop: {metric: val_accuracy, "
                                               "patience: 2, mode: max}\n"))
    run = Run(recipe, tmp_path / "run", "cpu")
    for value in (0.5, 0.6, 0.6, 0.7, 0.7):
        run.early_stop({"val_accuracy": value})
        assert not run.position.stopped
    run.early_stop({"train_loss": 1.0})  # an epoch without evaluation counts for nothing
    assert not run.position.stopped
    row = {"val_accuracy": 0.65}
    run.early_stop(row)
    assert run.position.stale == 2 and "val_accuracy" in run.position.stopped
    assert row["stopped"] == run.position.stopped


@pytest.mark.parametrize("extra, where", [
    ("accumulate: 0\n", "accumulate"),
    ("accumulate: 1.5\n", "accumulate"),
    ("early_stop: {metric: loss}\n", "early_stop.metric"),
    ("early_stop: {metric: val_loss, patience: 0}\n", "early_stop.patience"),
    ("early_stop: {metric: val_loss, mode: best}\n", "early_stop.mode"),
    ("early_stop: {metric: val_loss, min_delta: -1}\n", "early_stop.min_delta"),
    ("early_stop: {metric: val_loss, paitence: 3}\n", "early_stop"),
])
def test_validate_rejects_bad_values_with_their_place(tmp_path, capsys, extra, where):
    recipe = write(tmp_path, extra="epochs: 1\n" + extra)
    capsys.readouterr()
    assert main(["validate", str(recipe)]) == 1
    err = capsys.readouterr().err
    assert f"node '{where}" in err and "tiny.yaml:9:" in err, err


def test_validate_accepts_the_new_keys(tmp_path, capsys):
    recipe = write(tmp_path, extra="epochs: 1\naccumulate: 2\nprecision: bf16\ndevice: auto\n"
                                   "compile: false\nchannels_last: false\n"
                                   "early_stop: {metric: val_loss, patience: 3, mode: min, min_delta: 0}\n")
    assert main(["validate", str(recipe)]) == 0, capsys.readouterr().err
