"""The training runner on the embedded digits: run folders, resume after SIGKILL, DDP, eval, infer."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.compiler.ir import SpecError
from engine.train.checkpoint import load_checkpoint, save_checkpoint
from engine.train.recipe import load_recipe
from tests.conftest import REPO

MLP = """
# A two-layer perceptron on 8x8 digits (no batch norm or dropout, so DDP matches one process).
# engine build mlp.yaml (1986)
name: mlp
params: {hidden: 32}
inputs: {image: [B, 1, 8, 8]}
graph:
  flatten: flatten
  fc1: {op: linear, out: $hidden}
  act: relu
  fc2: {op: linear, out: 10}
"""
RECIPE = """
name: tiny
spec: {spec}
data: {{dataset: digits, batch_size: 64}}
procedure: classify
optimizer: {{name: sgd, lr: 0.1, momentum: 0.9}}
scheduler: {{name: cosine}}
epochs: {epochs}
seed: 3
checkpoint: {{every_steps: {every}}}
"""


def write(tmp_path: Path, spec: str = "small_cnn", epochs: int = 2, every: int = 0) -> Path:
    (tmp_path / "mlp.yaml").write_text(textwrap.dedent(MLP))
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(RECIPE.format(spec=spec, epochs=epochs, every=every)))
    return path


def rows(folder: Path) -> list[dict]:
    with (folder / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def cli(*argv, cwd=REPO, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *argv], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=600)


def test_a_run_writes_its_folder(tmp_path, capsys):
    recipe = write(tmp_path)
    out = tmp_path / "runs"
    assert main(["train", str(recipe), "--output", str(out)]) == 0
    folder = next(out.iterdir())
    for name in ("recipe.yaml", "spec.yaml", "spec.sha256", "metrics.csv", "metrics.png",
                 "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (folder / name).is_file(), name
    table = rows(folder)
    assert [r["epoch"] for r in table] == ["1", "2"]
    assert float(table[-1]["val_accuracy"]) > 0.5
    assert (folder / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["eval", str(recipe), "--checkpoint", str(folder / "checkpoints/best.pt")]) == 0
    assert "accuracy" in capsys.readouterr().out


def _kill_mid_epoch(recipe: Path, output: Path) -> Path | None:
    """Start a run, SIGKILL it right after a mid-epoch checkpoint; its folder, or None if the
    run had already moved on to an epoch boundary when the signal landed (a timing race)."""
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "train", str(recipe), "--output",
                             str(output)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        last = list(output.glob("*/checkpoints/last.pt"))
        position = load_checkpoint(last[0])["position"] if last else {}
        if position.get("step", 0) >= 25 and position.get("batch"):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    folder = next(output.iterdir())
    return folder if load_checkpoint(folder / "checkpoints/last.pt")["position"]["batch"] else None


def test_resume_after_sigkill_continues_identically(tmp_path):
    recipe = write(tmp_path, "mlp.yaml", epochs=3, every=5)
    clean = tmp_path / "clean"
    assert cli("train", str(recipe), "--output", str(clean)).returncode == 0
    folder = None
    for attempt in range(5):  # the kill must land mid-epoch; retry if the run outran it
        folder = _kill_mid_epoch(recipe, tmp_path / f"killed{attempt}")
        if folder is not None:
            break
    assert folder is not None, "could not kill the run mid-epoch in 5 attempts"
    assert cli("train", str(recipe), "--resume", str(folder)).returncode == 0
    assert rows(folder) == rows(next(clean.iterdir()))


def test_two_processes_follow_the_one_process_loss_curve(tmp_path):
    recipe = write(tmp_path, "mlp.yaml", epochs=2)
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli("train", str(recipe), "--output", str(one)).returncode == 0
    result = cli("train", str(recipe), "--output", str(two), "--nproc", "2",
                 env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    a, b = rows(next(one.iterdir())), rows(next(two.iterdir()))
    for ra, rb in zip(a, b, strict=True):
        assert abs(float(ra["train_loss"]) - float(rb["train_loss"])) < 1e-4
        assert abs(float(ra["val_loss"]) - float(rb["val_loss"])) < 1e-4


def test_infer_names_the_top_classes(tmp_path, capsys):
    from PIL import Image
    recipe = write(tmp_path, epochs=1)
    out = tmp_path / "runs"
    assert main(["train", str(recipe), "--output", str(out)]) == 0
    image = tmp_path / "seven.png"
    Image.fromarray((torch.rand(8, 8) * 255).to(torch.uint8).numpy(), mode="L").save(image)
    checkpoint = next(out.glob("*/checkpoints/last.pt"))
    capsys.readouterr()
    assert main(["infer", str(recipe), "--checkpoint", str(checkpoint), str(image),
                 "--top-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("seven.png: ") and line.count(",") == 1


def test_checkpoints_never_unpickle_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo hacked",))
    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(SpecError, match="cannot read checkpoint"):
        load_checkpoint(path)
    save_checkpoint({"procedure": {"w": torch.ones(2)}, "n": 3}, tmp_path / "ok.pt")
    assert load_checkpoint(tmp_path / "ok.pt")["n"] == 3


@pytest.mark.parametrize("change, line, message", [
    ("optimizer: {name: adamw2, lr: 0.1}", 6, "unknown optimizer 'adamw2'"),
    ("data: {dataset: digitz, batch_size: 64}", 4, "unknown dataset 'digitz'"),
    ("data: {dataset: usps, root: /nonexistent/folder}", 4, "/nonexistent/folder"),
    ("epochs: two", 8, "epochs: 'two' is not of type 'integer'"),
    ("procedure: clasify", 5, "unknown procedure 'clasify'"),
])
def test_bad_recipes_give_located_errors(tmp_path, change, line, message):
    recipe = write(tmp_path)
    key = change.split(":")[0]
    text = "\n".join(change if ln.startswith(key + ":") else ln
                     for ln in recipe.read_text().splitlines())
    recipe.write_text(text + "\n")
    result = cli("train", str(recipe))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{recipe}:{line}:" in result.stderr and message in result.stderr, result.stderr


def test_a_recipe_whose_spec_does_not_validate(tmp_path):
    (tmp_path / "bad.yaml").write_text("inputs: {x: [B, 1, 8, 8]}\ngraph:\n  fc: {op: lineer}\n")
    recipe = write(tmp_path, "bad.yaml")
    result = cli("train", str(recipe))
    assert result.returncode == 1 and "bad.yaml:3:3" in result.stderr
    assert "did you mean 'linear'" in result.stderr and "Traceback" not in result.stderr


BN_DROPOUT = """
name: bn_mlp
inputs: {image: [B, 1, 8, 8]}
graph:
  flatten: flatten
  fc1: {op: linear, out: 32}
  bn: batchnorm1d
  act: relu
  drop: {op: dropout, p: 0.5}
  fc2: {op: linear, out: 10}
"""


def test_evaluation_runs_in_eval_mode_and_restores_the_mode(tmp_path):
    """Batch norm on its running statistics and no dropout while evaluating (the loss equals
    the eval-mode model's, batch by batch), and the model trains again afterwards."""
    from engine.train.loader import eval_batches
    from engine.train.recipe import load_recipe
    from engine.train.runner import Run
    (tmp_path / "bn_mlp.yaml").write_text(textwrap.dedent(BN_DROPOUT))
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(RECIPE.format(spec="bn_mlp.yaml", epochs=1, every=0)))
    run = Run(load_recipe(path), tmp_path / "run", "cpu")
    model = run.procedure.model
    with torch.no_grad():  # running statistics away from their (0, 1) start
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    model.train()
    got = run.evaluate("val")["loss"]
    assert model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for images, labels in eval_batches(run.eval_sets["val"], 64, 0):
            total += float(torch.nn.functional.cross_entropy(model(images), labels, reduction="sum"))
            count += len(labels)
    assert abs(got - total / count) < 1e-5


@pytest.mark.parametrize("name", ["../../escape", "/tmp/abs", "a/b", "my run: v2", ""])
def test_a_recipe_name_is_one_folder_word(tmp_path, name):
    """The run folder is <output>/<name>-<time>: a name that is a path would put it elsewhere."""
    text = (REPO / "recipes" / "digits_cnn.yaml").read_text()
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("name: digits_cnn", f"name: {json.dumps(name)}", 1))
    with pytest.raises(SpecError) as err:
        load_recipe(path)
    assert "name" in str(err.value) and str(path) in str(err.value)


def test_run_files_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """metrics.csv (and every other run text file) is written to a temporary file and renamed
    over the old one: a crash at the rename leaves the old rows and no temporary file."""
    from engine.train import checkpoint
    from engine.train.checkpoint import write_text_atomic
    path = tmp_path / "run" / "metrics.csv"
    write_text_atomic(path, "epoch,loss\n1,0.5\n")

    def killed(src, dst):
        raise KeyboardInterrupt  # the process dies between writing and renaming

    monkeypatch.setattr(checkpoint.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(path, "epoch,loss\n1,0.5\n2,0.4\n")
    assert path.read_text() == "epoch,loss\n1,0.5\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.csv"]


def test_non_finite_numbers_are_refused_and_a_nan_loss_stops_the_run(tmp_path, capsys):
    """`lr: .inf` passes the schema's `exclusiveMinimum: 0`: a rule refuses it where it is
    written. A finite but absurd lr trains to NaN: the run stops at that step with a clear
    error, before a NaN reaches a checkpoint, unless the recipe opts out."""
    text = (REPO / "recipes" / "digits_cnn.yaml").read_text()
    assert "lr: 0.003" in text
    path = tmp_path / "inf.yaml"
    path.write_text(text.replace("lr: 0.003", "lr: .inf"))
    with pytest.raises(SpecError, match="optimizer.lr is inf, not a finite number"):
        load_recipe(path)
    path.write_text(text.replace("lr: 0.003", "lr: 1.0e+30"))
    argv = ["train", str(path), "--set", "epochs=null", "--set", "steps=40", "--output",
            str(tmp_path / "runs"), "--device", "cpu"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "the training loss is nan at step" in err and "training stopped" in err
    # the stopped run's folder says why it ended (`engine runs` shows `failed`, not `killed`)
    [folder] = (tmp_path / "runs").iterdir()
    status = json.loads((folder / "status").read_text())
    assert status["state"] == "failed" and "the training loss is nan at step" in status["reason"]
    assert main(["runs", str(tmp_path / "runs")]) == 0
    assert "failed" in capsys.readouterr().out
    assert main([*argv, "--set", "stop_on_nonfinite=false"]) == 0
