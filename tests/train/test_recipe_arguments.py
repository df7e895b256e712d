"""Recipes are checked before training: the arguments of the optimizer, scheduler and loss
against their signatures (engine/train/arguments.py), the procedure against the spec and the
data, numbers that must be finite, and the device. Each is a located error from `engine
validate`, not a crash once training has started."""

from __future__ import annotations

import pytest
import torch

from engine.cli import main
from engine.train.losses import make_loss
from tests.train.test_train import write


def validate(tmp_path, capsys, change: str) -> tuple[int, str, str]:
    recipe = write(tmp_path)
    key = change.split(":")[0]
    lines = recipe.read_text().splitlines()
    if not any(ln.startswith(key + ":") for ln in lines):
        lines.append(change)
    recipe.write_text("\n".join(change if ln.startswith(key + ":") else ln for ln in lines) + "\n")
    capsys.readouterr()
    code = main(["validate", str(recipe)])
    return code, capsys.readouterr().err, str(recipe)


@pytest.mark.parametrize("change, line, message, hint", [
    ("optimizer: {name: adam, lr: 0.001, momentum: 0.9}", 6,
     "optimizer 'adam' has no argument 'momentum'", "its arguments: lr, betas"),
    ("optimizer: {name: sgd, lr: 0.1, weight_decy: 0.1}", 6,
     "optimizer 'sgd' has no argument 'weight_decy'", "did you mean 'weight_decay'"),
    ("optimizer: {name: adam, lr: 0.001, amsgrad: 1}", 6, "optimizer.amsgrad is 1: not true or false", ""),
    ("optimizer: {name: adam, lr: .inf}", 6, "optimizer.lr is inf, not a finite number", ""),
    ("scheduler: {name: step}", 7, "scheduler 'step' needs every", ""),
    ("scheduler: {name: step, every: 0}", 7, "scheduler.every is 0, below 1", "needs every >= 1"),
    ("scheduler: {name: cosine, warmup: 5}", 7, "scheduler 'cosine' has no argument 'warmup'",
     "did you mean 'warmup_steps'"),
    ("seed: -1", 9, "seed: -1 is less than the minimum of 0", ""),
    ("loss: {name: cross_entropy, label_smoothin: 0.1}", 11,
     "loss 'cross_entropy' has no argument 'label_smoothin'", "did you mean 'label_smoothing'"),
    ("loss: {name: cross_entropy, reduction: 3}", 11, "loss.reduction is 3: not a string", ""),
    ("spec: {name: small_cnn, set: {num_classes: 5}}", 3,
     "the spec's logits have 5 classes, the data has 10", "num_classes: 10"),
    ("spec: dcgan", 3, "procedure 'classify' trains one network; spec 'dcgan' has 2", ""),
    ("procedure: gan", 3, "procedure 'gan' trains several networks; spec 'small_cnn' has one", ""),
])
def test_a_recipe_that_cannot_train_is_a_located_error(tmp_path, capsys, change, line, message,
                                                       hint):
    code, err, recipe = validate(tmp_path, capsys, change)
    assert code == 1 and "internal error" not in err, err
    assert f"{recipe}:{line}:" in err and message in err and hint in err, err


def test_the_arguments_checks_accept_what_torch_accepts(tmp_path, capsys):
    change = "loss: {name: cross_entropy, weight: [1, 2, 1, 1, 1, 1, 1, 1, 1, 3], reduction: sum}"
    assert validate(tmp_path, capsys, change)[0] == 0
    for change in ("optimizer: {name: adam, lr: 0.001, betas: [0.5, 0.999], weight_decay: 0}",
                   "optimizer: {name: sgd, lr: 1, momentum: 0.9, nesterov: true}",
                   "scheduler: {name: step, every: 100, gamma: 0.5}"):
        assert validate(tmp_path, capsys, change)[0] == 0, change
    weight = [1.0, 2.0, 3.0]
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 2, 1])
    ours = make_loss({"name": "cross_entropy", "weight": weight, "reduction": "sum"})
    oracle = torch.nn.CrossEntropyLoss(weight=torch.tensor(weight), reduction="sum")
    torch.testing.assert_close(ours(logits, labels), oracle(logits, labels))


@pytest.mark.parametrize("device, message", [
    ("gpu", "unknown device 'gpu'"),
    pytest.param("cuda", "this machine has no CUDA GPU", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="this machine has a GPU")),
    ("meta", "the engine trains on cpu, cuda or mps"),
])
def test_a_device_that_is_not_there_is_a_clear_error(tmp_path, capsys, device, message):
    recipe = write(tmp_path)
    capsys.readouterr()
    assert main(["train", str(recipe), "--device", device, "--output", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert message in err and "internal error" not in err, err
