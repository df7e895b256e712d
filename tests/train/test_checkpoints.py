"""Checkpoints you can trust: resume, eval, infer and sample share one loader, which refuses a
damaged file (empty, truncated, a flipped byte inside a weight) and a checkpoint of another
network, procedure, recipe or optimizer with a clear error and exit status 1, never a crash."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.train.checkpoint import load_checkpoint, save_checkpoint
from tests.train.test_train import MLP  # the digits MLP every training test shares

RECIPE = """
name: {name}
spec: mlp.yaml
data: {{dataset: digits, batch_size: 128}}
procedure: classify
optimizer: {{name: sgd, lr: 0.1, momentum: 0.9}}
epochs: 1
seed: 3
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A finished one-epoch run of `tiny` (its recipe file and run folder)."""
    root = tmp_path_factory.mktemp("ckpt")
    (root / "mlp.yaml").write_text(textwrap.dedent(MLP))
    recipe = root / "tiny.yaml"
    recipe.write_text(textwrap.dedent(RECIPE.format(name="tiny")))
    assert main(["train", str(recipe), "--output", str(root / "runs"), "--device", "cpu"]) == 0
    (folder,) = (root / "runs").iterdir()
    return recipe, folder


@pytest.fixture
def run(trained, tmp_path) -> tuple[Path, Path]:
    """A copy of the trained run that a test may damage."""
    recipe, folder = trained
    shutil.copytree(folder, tmp_path / folder.name)
    return recipe, tmp_path / folder.name


def refused(capsys, argv: list[str], *says: str) -> str:
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err, err
    for text in says:
        assert text in err, err
    return err


def test_a_checkpoint_verifies_and_evaluates(run, capsys):
    recipe, folder = run
    state = load_checkpoint(folder / "checkpoints" / "last.pt")
    assert state["meta"]["recipe"] == "tiny" and state["meta"]["procedure"] == "classify"
    assert state["meta"]["spec_sha256"] == (folder / "spec.sha256").read_text().strip()
    assert main(["eval", str(recipe), "--checkpoint", str(folder / "checkpoints" / "last.pt")]) == 0


def _flip_a_weight_byte(path: Path) -> None:
    """Flip one byte inside fc1.weight's data (found by its bytes in the zip): the container
    itself does not notice, only the content hash can."""
    weight = load_checkpoint(path)["procedure"]["model"]["fc1.weight"]
    data = path.read_bytes()
    at = data.index(weight.numpy().tobytes()) + weight.numel() * 2  # the middle of the tensor
    path.write_bytes(data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1:])


@pytest.mark.parametrize("damage, says", [
    (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "cannot read checkpoint"),
    (lambda p: p.write_bytes(b"not a checkpoint at all"), "cannot read checkpoint"),
    (_flip_a_weight_byte, "is damaged: its content does not match the SHA-256"),
    (lambda p: torch.save({"x": 1}, p), "holds no training state"),
])
@pytest.mark.parametrize("command", ["resume", "eval"])
def test_a_damaged_checkpoint_is_a_clear_error(run, capsys, damage, says, command):
    recipe, folder = run
    last = folder / "checkpoints" / "last.pt"
    damage(last)
    argv = ["train", str(recipe), "--resume", str(folder)] if command == "resume" else \
        ["eval", str(recipe), "--checkpoint", str(last)]
    refused(capsys, argv, str(last), says)


def _variant(recipe: Path, folder: Path, name: str, old: str, new: str) -> Path:
    """The recipe with one change, written (beside a copy of its spec) in another folder."""
    folder.mkdir(exist_ok=True)
    shutil.copy(recipe.with_name("mlp.yaml"), folder / "mlp.yaml")
    path = folder / f"{name}.yaml"
    path.write_text(recipe.read_text().replace(old, new).replace("name: tiny", f"name: {name}"))
    return path


def test_another_network_recipe_optimizer_or_procedure_is_refused(run, capsys, tmp_path):
    recipe, folder = run
    last = str(folder / "checkpoints" / "last.pt")
    wider = _variant(recipe, tmp_path / "a", "tiny", "spec: mlp.yaml",
                     "spec: {name: mlp.yaml, set: {hidden: 16}}")
    resume = ["train", str(wider), "--resume", str(folder)]
    evaluate = ["eval", str(wider), "--checkpoint", last]
    for argv in (resume, evaluate):
        refused(capsys, argv, "does not fit recipe tiny", "its network resolved differently")
    other = _variant(recipe, tmp_path / "b", "other", "epochs: 1", "epochs: 1")
    refused(capsys, ["train", str(other), "--resume", str(folder)],
            "it was saved by recipe 'tiny', not 'other'")
    assert main(["eval", str(other), "--checkpoint", last]) == 0  # same network: may evaluate it
    adam = _variant(recipe, tmp_path / "c", "tiny", "name: sgd, lr: 0.1, momentum: 0.9",
                    "name: adam, lr: 0.001")
    refused(capsys, ["train", str(adam), "--resume", str(folder)],
            "it was saved by optimizer 'sgd', not 'adam'")
    state = load_checkpoint(last)  # as if a run of another procedure had saved it
    save_checkpoint({**state, "meta": {**state["meta"], "procedure": "autoencode"}}, Path(last))
    refused(capsys, ["eval", str(recipe), "--checkpoint", last],
            "it was saved by procedure 'autoencode', not 'classify'")


def test_resume_removes_what_a_killed_write_left(run):
    recipe, folder = run
    orphans = [folder / "checkpoints" / ".last.pt.k2j3.tmp", folder / ".metrics.csv.x9.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half a file")
    assert main(["train", str(recipe), "--resume", str(folder), "--set", "epochs=2"]) == 0
    assert not any(p.exists() for p in orphans)
    assert not list(folder.rglob("*.tmp"))
