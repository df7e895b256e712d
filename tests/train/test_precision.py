"""Devices and precision on the embedded digits: `device:`, `precision:` (bf16 on CPU, fp16's
GradScaler), `compile:` and `channels_last:`; all on CPU, tiny and fast."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.train.checkpoint import load_checkpoint
from engine.train.procedures import base
from engine.train.recipe import load_recipe
from engine.train.runner import Run
from tests.train.test_train import MLP  # the digits MLP every training test shares

RECIPE = """
name: tiny
spec: {spec}
data: {{dataset: digits, batch_size: 64}}
procedure: classify
optimizer: {{name: sgd, lr: 0.1, momentum: 0.9}}
epochs: 1
seed: 3
"""


def write(tmp_path: Path, spec: str = "mlp.yaml", extra: str = "") -> Path:
    (tmp_path / "mlp.yaml").write_text(textwrap.dedent(MLP))
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(RECIPE.format(spec=spec)) + textwrap.dedent(extra))
    return path


def train(tmp_path: Path, recipe: Path, out: str, *argv: str) -> Path:
    assert main(["train", str(recipe), "--output", str(tmp_path / out), *argv]) == 0
    return next((tmp_path / out).iterdir())


def rows(folder: Path) -> list[dict]:
    with (folder / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_bf16_trains_on_cpu_close_to_fp32(tmp_path):
    fp32 = rows(train(tmp_path, write(tmp_path), "fp32"))
    bf16 = rows(train(tmp_path, write(tmp_path, extra="precision: bf16\n"), "bf16"))
    for key in ("train_loss", "val_loss"):
        a, b = float(fp32[-1][key]), float(bf16[-1][key])
        assert torch.isfinite(torch.tensor(b)) and abs(a - b) < 0.1 * a + 0.05, (key, a, b)


def test_amp_true_means_bf16_on_a_cpu_with_native_bf16(tmp_path, monkeypatch):
    monkeypatch.setattr(base, "cpu_has_bf16", lambda: True)
    run = Run(load_recipe(write(tmp_path, extra="amp: true\n")), tmp_path / "run", "cpu")
    assert run.procedure.dtype == torch.bfloat16 and not run.procedure.scalers
    with run.procedure.autocast():
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.bfloat16


def test_amp_true_trains_in_fp32_on_a_cpu_without_and_says_so(tmp_path, monkeypatch, capsys):
    """Emulated bf16 is many times slower than fp32 (a conv step measured 22x on an AVX2 CPU):
    `amp: true` falls back to fp32 there, while `precision: bf16` still forces bf16."""
    monkeypatch.setattr(base, "cpu_has_bf16", lambda: False)
    run = Run(load_recipe(write(tmp_path, extra="amp: true\n")), tmp_path / "run", "cpu")
    assert run.procedure.dtype is None and not run.procedure.amp
    assert "amp: true trains in fp32 here" in capsys.readouterr().err
    forced = Run(load_recipe(write(tmp_path, extra="precision: bf16\n")), tmp_path / "forced", "cpu")
    assert forced.procedure.dtype == torch.bfloat16


def test_cpu_bf16_check_agrees_with_torch():
    assert base.cpu_has_bf16() == torch.ops.mkldnn._is_mkldnn_bf16_supported()


def test_fp16_on_cpu_is_a_clear_error(tmp_path, capsys):
    recipe = write(tmp_path, extra="precision: fp16\n")
    capsys.readouterr()
    assert main(["train", str(recipe), "--device", "cpu", "--output", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "fp16 needs a CUDA GPU; use bf16 on CPU" in err
    assert "Traceback" not in err and "internal error" not in err, err


def _procedure(tmp_path: Path, extra: str):
    path = write(tmp_path, extra=extra)
    path.write_text(path.read_text().replace("lr: 0.1, momentum: 0.9", "lr: 1.0"))
    recipe = load_recipe(path)
    return Run(recipe, tmp_path / "run", "cpu").procedure


def test_grad_scaler_unscales_before_clipping(tmp_path):
    """With an enabled scaler (CPU GradScaler), the step clips the true gradient: the update
    equals plain SGD on the clipped unscaled gradient, and the scale grows back as usual."""
    torch.manual_seed(0)
    images, labels = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    plain = _procedure(tmp_path, "clip_grad: 0.01\n")
    scaled = _procedure(tmp_path, "clip_grad: 0.01\n")
    scaled.scalers["model"] = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scaled.model.load_state_dict(plain.model.state_dict())
    for proc in (plain, scaled):
        proc.train_step((images, labels))
    for a, b in zip(plain.model.parameters(), scaled.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    state = scaled.state_dict()["scalers"]["model"]
    assert state["scale"] == 2.0**10 and state["_growth_tracker"] == 1


def test_grad_scaler_skips_a_step_with_inf_gradients_and_backs_off(tmp_path):
    proc = _procedure(tmp_path, "")
    proc.scalers["model"] = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    before = [p.detach().clone() for p in proc.model.parameters()]
    loss = proc.model(torch.rand(4, 1, 8, 8)).sum() * float("inf")
    proc.optimize(loss)
    assert all(torch.equal(a, b) for a, b in zip(before, proc.model.parameters()))
    assert proc.scalers["model"].get_scale() == 2.0**9


def test_the_scaler_state_goes_into_the_checkpoint_and_back(tmp_path):
    proc = _procedure(tmp_path, "")
    proc.scalers["model"] = torch.amp.GradScaler("cpu", init_scale=123.0)
    state = proc.state_dict()
    other = _procedure(tmp_path, "")
    other.scalers["model"] = torch.amp.GradScaler("cpu")
    other.load_state_dict(state)
    assert other.scalers["model"].get_scale() == 123.0


def test_compile_reaches_torch_compile(tmp_path, monkeypatch):
    seen = []

    def record(fn, *args, **kwargs):
        seen.append(fn)
        return fn
    monkeypatch.setattr(torch, "compile", record)
    folder = train(tmp_path, write(tmp_path, extra="compile: true\n"), "runs")
    assert seen and rows(folder)
    keys = load_checkpoint(folder / "checkpoints/last.pt")["procedure"]["model"]
    assert not any("_orig_mod" in k for k in keys)


def test_channels_last_matches_the_default_run(tmp_path):
    plain = Run(load_recipe(write(tmp_path, "small_cnn")), tmp_path / "plain", "cpu")
    run = Run(load_recipe(write(tmp_path, "small_cnn", "channels_last: true\n")),
              tmp_path / "cl", "cpu")
    convs = [p for p in run.procedure.model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert any(not p.is_contiguous() for p in convs)  # really another layout, not a no-op
    images = torch.rand(8, 1, 8, 8)
    with torch.no_grad():  # the same weights give the same logits
        torch.testing.assert_close(run.procedure.model.eval()(images),
                                   plain.procedure.model.eval()(images), rtol=1e-4, atol=1e-5)
    plain.train()
    run.train()
    a, b = rows(tmp_path / "plain"), rows(tmp_path / "cl")
    for key in ("train_loss", "val_loss"):  # one epoch: float rounding only
        x, y = float(a[-1][key]), float(b[-1][key])
        assert abs(x - y) < 0.03 * x, (key, x, y)


def test_the_recipe_device_and_the_flag_that_wins(tmp_path, capsys):
    recipe = write(tmp_path, extra="device: cpu\n")
    assert Run(load_recipe(recipe), tmp_path / "a").device == torch.device("cpu")
    if not torch.cuda.is_available():
        bad = write(tmp_path, extra="device: cuda\n")
        capsys.readouterr()
        assert main(["train", str(bad), "--output", str(tmp_path / "b")]) == 1
        err = capsys.readouterr().err
        assert "device: cuda: this machine has no CUDA GPU" in err and "Traceback" not in err
        assert Run(load_recipe(bad), tmp_path / "c", "cpu").device == torch.device("cpu")


@pytest.mark.parametrize("extra, message", [
    ("precision: fp8\n", "precision"),
    ("device: gpu\n", "device"),
    ("compile: yes please\n", "compile"),
    ("channels_last: 1\n", "channels_last"),
])
def test_validate_rejects_bad_values_with_their_place(tmp_path, capsys, extra, message):
    recipe = write(tmp_path, extra=extra)
    capsys.readouterr()
    assert main(["validate", str(recipe)]) == 1
    err = capsys.readouterr().err
    assert message in err and "tiny.yaml:" in err, err
