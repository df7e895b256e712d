"""Run tracking: TensorBoard event files, `engine runs`, `engine runs compare`, `engine eval --json`."""

from __future__ import annotations

import json
import textwrap

import pytest

from engine.cli import main
from engine.train.runs import recipe_diff

RECIPE = """
name: tiny
spec: small_cnn
data: {{dataset: digits, batch_size: 64}}
procedure: classify
optimizer: {{name: sgd, lr: {lr}, momentum: 0.9}}
epochs: 1
seed: 3
log_every_steps: 5
"""
STEPS = 20  # digits: 1257 training images in batches of 64


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two one-epoch runs that differ only in the learning rate: (runs folder, [a, b], recipe)."""
    tmp = tmp_path_factory.mktemp("runs")
    out, folders = tmp / "runs", []
    for lr in (0.1, 0.02):
        recipe = tmp / f"tiny_{lr}.yaml"
        recipe.write_text(textwrap.dedent(RECIPE.format(lr=lr)))
        before = set(out.iterdir()) if out.exists() else set()
        assert main(["train", str(recipe), "--output", str(out)]) == 0
        folders += sorted(set(out.iterdir()) - before)
    return out, folders, recipe


def test_tensorboard_has_step_and_epoch_scalars(two_runs):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    _, folders, _ = two_runs
    for folder in folders:
        acc = event_accumulator.EventAccumulator(str(folder / "tb"))
        acc.Reload()
        tags = acc.Tags()["scalars"]
        assert {"train/loss", "train/lr", "epoch/train_loss", "epoch/val_accuracy"} <= set(tags)
        assert [e.step for e in acc.Scalars("train/loss")] == list(range(5, STEPS + 1, 5))
        assert [e.step for e in acc.Scalars("epoch/val_accuracy")] == [STEPS]
    states = [json.loads((f / "status").read_text())["state"] for f in folders]
    assert states == ["finished", "finished"]


def test_runs_lists_both_finished(two_runs, capsys):
    out, folders, _ = two_runs
    capsys.readouterr()
    assert main(["runs", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["run", "recipe", "spec", "status"]
    assert table[0].split()[-2:] == ["wall", "cpu"]
    for folder in folders:
        line = next(row for row in table if row.startswith(folder.name))
        assert " finished " in line and " tiny " in line
        assert (folder / "spec.sha256").read_text()[:12] in line
        assert "val_accuracy" in line and "1/1" in line


def test_compare_prints_tables_recipe_diff_and_plot(two_runs, tmp_path, capsys):
    _, (a, b), _ = two_runs
    png = tmp_path / "compare.png"
    capsys.readouterr()
    assert main(["runs", "compare", str(a), str(b), "-o", str(png)]) == 0
    text = capsys.readouterr().out
    assert a.name in text and b.name in text
    header = next(line for line in text.splitlines() if line.startswith("epoch"))
    assert header.count("val_accuracy") == 2  # both metrics tables, side by side
    assert "~ optimizer.lr: 0.1 -> 0.02" in text
    assert "same spec" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


def test_compare_of_different_specs_diffs_them(two_runs, tmp_path, capsys):
    _, (a, b), _ = two_runs
    (tmp_path / "b").mkdir()
    for name in ("recipe.yaml", "metrics.csv"):
        (tmp_path / "b" / name).write_bytes((b / name).read_bytes())
    recipe = (tmp_path / "b" / "recipe.yaml").read_text()
    (tmp_path / "b" / "recipe.yaml").write_text(recipe.replace("spec: small_cnn",
                                                               "spec: {name: small_cnn, set: {width: 16}}"))
    (tmp_path / "b" / "spec.sha256").write_text("0" * 64 + "\n")
    capsys.readouterr()
    assert main(["runs", "compare", str(a), str(tmp_path / "b"), "-o", str(tmp_path / "c.png")]) == 0
    text = capsys.readouterr().out
    assert "+ spec.set.width: 16" in text and "same spec" not in text


def test_recipe_diff_uses_dotted_paths():
    a = {"optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 1, "amp": False}
    b = {"optimizer": {"name": "sgd", "lr": 0.2}, "epochs": 1, "data": {"batch_size": 8}}
    assert recipe_diff(a, b) == ["- amp: false", "+ data.batch_size: 8", "~ optimizer.lr: 0.1 -> 0.2"]


def test_eval_json_is_one_object(two_runs, capsys):
    _, (a, _), recipe = two_runs
    capsys.readouterr()
    assert main(["eval", str(recipe), "--checkpoint", str(a / "checkpoints" / "best.pt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"loss", "accuracy", "split", "samples"} <= set(result)
    assert 0 <= result["accuracy"] <= 1 and result["split"] == "test"
    # the figures are recorded in the run folder, where benchmarks/docs_figures.py reads them
    saved = json.loads((a / "eval-test.json").read_text())
    assert saved["accuracy"] == result["accuracy"] and saved["checkpoint"] == "checkpoints/best.pt"
    assert saved["overrides"] == [] and saved["evaluated"][:2] == "20"


def test_eval_baseline_is_a_pixel_logistic_regression(two_runs, capsys):
    """On scikit-learn's 8x8 digits a logistic regression on pixels scores about 0.96 (the
    known figure for this set); the record keeps it beside the network's accuracy."""
    _, (a, _), recipe = two_runs
    capsys.readouterr()
    assert main(["eval", str(recipe), "--checkpoint", str(a / "checkpoints" / "last.pt"),
                 "--baseline", "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "pixel_baseline_accuracy" in out and "recorded in" in out
    saved = json.loads((a / "eval-val.json").read_text())
    assert 0.92 <= saved["pixel_baseline_accuracy"] <= 0.99
    assert saved["checkpoint"] == "checkpoints/last.pt"


def test_runs_of_an_empty_folder(tmp_path, capsys):
    assert main(["runs", str(tmp_path)]) == 0
    assert "no runs" in capsys.readouterr().out
    assert main(["runs", "compare", str(tmp_path)]) == 2
    assert main(["runs", "compare", str(tmp_path), str(tmp_path)]) == 1


def test_a_killed_run_reads_as_killed(tmp_path, capsys):
    from engine.train.runs import run_status
    from engine.train.tracking import write_status
    write_status(tmp_path, "running")
    assert run_status(tmp_path, {"epochs": 2}, []) == "running"  # this very process
    status = json.loads((tmp_path / "status").read_text())
    (tmp_path / "status").write_text(json.dumps({**status, "pid": 2**22 + 12345}))
    assert run_status(tmp_path, {"epochs": 2}, []) == "killed"
    (tmp_path / "status").unlink()
    assert run_status(tmp_path, {"epochs": 2}, [{"epoch": "2"}]) == "finished"
    assert run_status(tmp_path, {"epochs": 2}, [{"epoch": "1"}]) == "stopped"


def test_status_records_the_runs_cpu_time(two_runs, tmp_path):
    """CPU seconds beside wall time (a figure that holds on a shared machine), summed over the
    processes of a resumed run."""
    _, (a, _), _ = two_runs
    status = json.loads((a / "status").read_text())
    assert status["state"] == "finished" and status["cpu_s"] > 0 and status["threads"] >= 1
    from engine.train.tracking import write_status
    (tmp_path / "status").write_text(json.dumps({"state": "killed", "pid": 2**22 + 1, "cpu_s": 100.0}))
    write_status(tmp_path, "running", cpu_start=0.0)  # the resuming process
    resumed = json.loads((tmp_path / "status").read_text())
    assert resumed["cpu_s_before"] == 100.0 and resumed["cpu_s"] >= 100.0
