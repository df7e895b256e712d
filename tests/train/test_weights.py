"""Starting weights (engine/train/weights.py): torchvision's, read through its weights API from a
temporary torch.hub cache (offline), and another run's checkpoint; the transfer report."""

from __future__ import annotations

import textwrap
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

import engine
from engine.cli import main
from engine.compiler.ir import SpecError
from engine.train.checkpoint import load_checkpoint, trained_weights
from engine.train.recipe import load_recipe
from engine.train.runner import Run
from engine.train.weights import TORCHVISION
from tests.compiler.test_torchvision_parity import VARIANTS
from tests.oracle import randomise_batchnorm

TINY = """
name: {name}
spec: {spec}
data: {{dataset: digits, batch_size: 16}}
procedure: classify
optimizer: {{name: sgd, lr: 0.01, momentum: 0.9}}
steps: 2
seed: 1
eval: {{every_epochs: 0}}
"""


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """A torch.hub cache holding 'torchvision's resnet18 weights': a state_dict torchvision
    saved, under the file name its weights URL ends with, as a download would leave it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(7)
    model = torchvision.models.resnet18(num_classes=1000)
    randomise_batchnorm(model)  # statistics other than 0/1, so a wrong mapping shows
    url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
    path = tmp_path / "torch" / "hub" / "checkpoints" / url.rsplit("/", 1)[1]
    path.parent.mkdir(parents=True)
    torch.save(model.state_dict(), path)
    return path


def recipe(tmp_path: Path, name: str, spec: str, **keys) -> Path:
    path = tmp_path / f"{name}.yaml"
    extra = "".join(f"{k}: {v}\n" for k, v in keys.items())
    path.write_text(textwrap.dedent(TINY.format(name=name, spec=spec)) + extra)
    return path


def test_build_loads_torchvision_weights_strictly_and_matches_torchvision(hub, capsys):
    assert main(["build", "resnet18", "--weights", "torchvision", "--depth", "0"]) == 0
    out = capsys.readouterr().out
    assert f"weights: torchvision resnet18 IMAGENET1K_V1 ({hub}) -> resnet18" in out
    assert "122 entries loaded: every key and shape agree" in out
    model = engine.build("resnet18", weights="torchvision").eval()
    ref = torchvision.models.resnet18(weights="DEFAULT").eval()  # torchvision's own loading
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got, want = model(x), ref(x)
    assert torch.allclose(got, want, atol=1e-5 * max(1.0, want.abs().max().item()))


def test_a_changed_head_starts_fresh(hub, capsys):
    assert main(["build", "resnet18", "--weights", "torchvision", "--set", "num_classes=10"]) == 0
    out = capsys.readouterr().out
    assert "120 loaded unchanged, 2 changed shape (re-initialised), 0 new" in out
    changed = out.split("changed shape, re-initialised:\n")[1].splitlines()
    assert [line.split()[0] for line in changed] == ["fc.weight", "fc.bias"]
    torch.manual_seed(0)
    fresh = engine.build("resnet18", num_classes=10)
    torch.manual_seed(0)
    model = engine.build("resnet18", weights="torchvision", num_classes=10)
    reference = torch.load(hub, weights_only=True)
    assert torch.equal(model.conv1.weight, reference["conv1.weight"])
    assert torch.equal(model.fc.weight, fresh.fc.weight)  # the fresh initialisation, kept


def test_a_recipe_starts_from_torchvision(hub, tmp_path, capsys):
    path = recipe(tmp_path, "tv", "{name: resnet18, set: {in_channels: 1, image_size: 8}}",
                  weights="torchvision")
    argv = ["train", str(path), "--set", "spec.set.num_classes=10", "--device", "cpu",
            "--output", str(tmp_path / "runs")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("weights: torchvision resnet18") == 1
    changed = out.split("changed shape, re-initialised:\n")[1].splitlines()[:3]
    assert [line.split()[0] for line in changed] == ["conv1.weight", "fc.weight", "fc.bias"]
    assert "[1000, 512] -> [10, 512]" in changed[1]
    (folder,) = (tmp_path / "runs").iterdir()
    assert "fc.bias" in (folder / "weights.txt").read_text()


def test_a_recipe_starts_from_another_runs_checkpoint(tmp_path, capsys):
    first = recipe(tmp_path, "first", "small_cnn", ema="{decay: 0.5}")
    assert main(["train", str(first), "--device", "cpu", "--output", str(tmp_path / "runs")]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    glob = f"{tmp_path}/runs/first-*/checkpoints/last.pt"
    second = recipe(tmp_path, "second", "small_cnn", weights=glob)
    assert main(["train", str(second), "--device", "cpu", "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert f"weights: {run}/checkpoints/last.pt -> small_cnn" in out
    assert "26 entries loaded: every key and shape agree" in out
    # the weights the first run evaluated (its EMA copy), not its raw model
    want = trained_weights(load_checkpoint(run / "checkpoints/last.pt")["procedure"])
    started = Run(load_recipe(second), tmp_path / "x", "cpu").procedure.unwrapped.state_dict()
    assert all(torch.equal(started[k], v) for k, v in want.items())
    # a resumed run (or eval) loads its own checkpoint, not `weights:`
    resumed = Run(load_recipe(second), tmp_path / "y", "cpu", weights=False)
    assert resumed.weights_report is None
    assert not torch.equal(resumed.procedure.unwrapped.state_dict()["fc.weight"], want["fc.weight"])


def _error(call) -> str:
    with pytest.raises(SpecError) as err:
        call()
    (d,) = err.value.diagnostics
    return f"{d.loc}: {d.message} | {d.hint}"


def test_bad_sources_are_located_errors(hub, tmp_path, monkeypatch):
    path = recipe(tmp_path, "bad", "small_cnn", weights="torchvison")
    text = _error(lambda: load_recipe(path))
    assert f"{path}:10:" in text and "unknown weights 'torchvison'" in text and "torchvision" in text
    text = _error(lambda: load_recipe(path, ["weights=torchvision"]))
    assert "spec 'small_cnn' has no torchvision weights" in text and "resnet18" in text
    text = _error(lambda: engine.build("resnet18", weights="torchvision:NOPE"))
    assert "no weights 'NOPE'" in text and "IMAGENET1K_V1" in text
    text = _error(lambda: engine.build("small_cnn", weights=f"{tmp_path}/none-*/last.pt"))
    assert "matches no file" in text
    text = _error(lambda: engine.build("small_cnn", weights=str(hub)))  # resnet18's: nothing fits
    assert "no entry of" in text


def test_torchvision_weights_not_cached_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    text = _error(lambda: engine.build("resnet18", weights="torchvision"))
    assert "cannot get torchvision's resnet18 weights" in text
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in text


def test_the_torchvision_table_is_the_parity_tested_one():
    assert TORCHVISION == VARIANTS
    for name in TORCHVISION.values():
        assert torchvision.models.get_model_weights(name).DEFAULT.url.endswith(".pth")
