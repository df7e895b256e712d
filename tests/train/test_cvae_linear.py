"""The seed's linear conditional VAE (specs/cvae_linear.yaml, MODELS.md 3.2): its parameter count
from the seed's layer sizes, its decoder written out in torch (the label's ReLU projection
*added* to z), and its recipes trained, evaluated and sampled on CI-sized runs."""

from __future__ import annotations

import csv
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from engine.cli import main
from engine.compiler import build
from engine.compiler.merge import SPECS_DIR
from engine.train.recipe import load_recipe
from engine.train.runner import Run

pytestmark = pytest.mark.usefixtures("one_thread")

SPEC = str(SPECS_DIR / "cvae_linear.yaml")
HIDDEN, LATENT, CLASSES = [512, 128, 32], 10, 10
STEPS = ["epochs=null", "steps=3", "data.batch_size=16", "eval.every_epochs=0"]  # as the generative tests


def linear(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs


def seed_parameters(pixels: int) -> int:
    """The seed's CVAE linear variant, layer by layer: encoder pixels -> 512 -> 128 -> 32 and a
    2 x latent head; label Linear(10 -> latent); decoder latent -> 32 -> 128 -> 512 -> pixels."""
    widths = [pixels, *HIDDEN]
    encoder = sum(linear(a, b) for a, b in zip(widths, widths[1:])) + linear(HIDDEN[-1], 2 * LATENT)
    label = linear(CLASSES, LATENT)
    back = [LATENT, *HIDDEN[::-1], pixels]
    decoder = sum(linear(a, b) for a, b in zip(back, back[1:]))
    return encoder + label + decoder


@pytest.mark.parametrize("image_size", [28, 8])
def test_parameter_count_is_the_seeds(image_size):
    model = build(SPEC, image_size=image_size)
    count = sum(p.numel() for p in model.parameters())
    assert count == seed_parameters(image_size * image_size)
    if image_size == 28:
        assert count == 945_298


def test_encoder_ignores_the_label_and_decoder_adds_its_projection():
    model = build(SPEC).eval()
    enc, dec = model["encoder"], model["decoder"]
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 1, 28, 28, generator=g)
    labels = torch.tensor([0, 3, 7, 9])
    with torch.no_grad():
        code = enc(images)  # q(z | x): the encoder takes no label (the seed's)
        got = dec(code["z"], labels)

        x = F.relu(F.linear(F.one_hot(labels, CLASSES).float(), dec.project.weight, dec.project.bias))
        x = code["z"] + x  # added, not concatenated
        for layer in dec.hidden.children():
            x = F.leaky_relu(layer.fc(x), 0.2)
        expected = torch.sigmoid(dec.fc(x)).reshape(4, 1, 28, 28)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(code["z"], code["mean"])  # eval: the mean, no sample
    assert [m.in_features for m in dec.hidden.modules() if isinstance(m, torch.nn.Linear)] == [10, 32, 128]


@pytest.fixture
def digits_run(tmp_path):
    return Run(load_recipe("cvae_linear_digits", [*STEPS, "eval.sample_metrics=[]"]), tmp_path / "run", "cpu")


def test_loss_falls_and_every_parameter_learns(digits_run):
    procedure, dataset = digits_run.procedure, digits_run.train_set
    assert procedure.conditional  # the decoder takes a label: samples can be asked for a digit
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=False)))
    losses = [procedure.train_step(batch)["loss"]]
    silent = [n for n, p in procedure.unwrapped.named_parameters()
              if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, f"no gradient reached {silent}"
    losses += [procedure.train_step(batch)["loss"] for _ in range(30)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.8 * losses[0], losses


def test_digits_recipe_trains_evaluates_and_samples_a_requested_digit(tmp_path, capsys, digits_judge):
    name = "cvae_linear_digits"
    assert main(["train", name, "--device", "cpu", "--output", str(tmp_path),
                 *[a for s in STEPS for a in ("--set", s)]]) == 0
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith(name + "-")]
    with (folder / "metrics.csv").open() as f:
        assert math.isfinite(float(list(csv.DictReader(f))[-1]["train_loss"]))
    checkpoint = str(folder / "checkpoints" / "last.pt")
    assert main(["eval", name, "--checkpoint", checkpoint, "--split", "val", "--set", "eval.samples=20"]) == 0
    out = capsys.readouterr().out
    assert "psnr" in out and "label_accuracy" in out
    grid = tmp_path / "threes.png"
    assert main(["sample", name, "--checkpoint", checkpoint, "-n", "8", "--label", "3", "-o", str(grid),
                 "--set", "eval.samples=20"]) == 0
    with Image.open(grid) as img:
        assert min(img.size) >= 28


@pytest.mark.parametrize("name", ["cvae_linear_mnist", "cvae_linear_digits"])
def test_recipes_extend_the_cvae_ones_with_the_linear_spec(name, data_root_for):
    data_root_for("mnist")
    recipe = load_recipe(name)
    base = load_recipe(name.replace("_linear", ""))
    assert recipe.shaped.spec.name == "cvae_linear"
    for key in ("data", "procedure", "optimizer", "epochs", "eval"):
        assert recipe.doc[key] == base.doc[key], key
