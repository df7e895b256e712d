"""The seed's linear conditional VAE (specs/cvae_linear.yaml, MODELS.md 3.2): its parameter counts
from the layer sizes, with the paper's conditioning (the label concatenated, to both networks)
and the seed's (`conditioning: add`: the label's ReLU projection *added* to z, the encoder
unconditioned), each written out in torch, and its recipes trained, evaluated and sampled on
CI-sized runs."""

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


def parameters(pixels: int, conditioning: str) -> int:
    """Layer by layer: encoder pixels (+ one-hot) -> 512 -> 128 -> 32 and a 2 x latent head;
    decoder latent (+ one-hot) -> 32 -> 128 -> 512 -> pixels; the seed's `add` has the label's
    Linear(10 -> latent) instead of the one-hot inputs."""
    extra = CLASSES if conditioning == "concat" else 0
    widths = [pixels + extra, *HIDDEN]
    encoder = sum(linear(a, b) for a, b in zip(widths, widths[1:])) + linear(HIDDEN[-1], 2 * LATENT)
    label = linear(CLASSES, LATENT) if conditioning == "add" else 0
    back = [LATENT + extra, *HIDDEN[::-1], pixels]
    decoder = sum(linear(a, b) for a, b in zip(back, back[1:]))
    return encoder + label + decoder


@pytest.mark.parametrize("conditioning", ["concat", "add"])
@pytest.mark.parametrize("image_size", [28, 8])
def test_parameter_count_from_the_layer_sizes(image_size, conditioning):
    model = build(SPEC, image_size=image_size, conditioning=conditioning)
    count = sum(p.numel() for p in model.parameters())
    assert count == parameters(image_size * image_size, conditioning)
    if image_size == 28 and conditioning == "add":
        assert count == 945_298  # the seed's


def _decode(dec, x):
    for layer in dec.hidden.children():
        x = F.leaky_relu(layer.fc(x), 0.2)
    return torch.sigmoid(dec.fc(x)).reshape(-1, 1, 28, 28)


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 1, 28, 28, generator=g), torch.tensor([0, 3, 7, 9])


def test_seeds_encoder_ignores_the_label_and_decoder_adds_its_projection():
    model = build(SPEC, conditioning="add").eval()
    enc, dec = model["encoder"], model["decoder"]
    images, labels = _batch()
    with torch.no_grad():
        code = enc(images, labels)
        assert torch.equal(code["mean"], enc(images, labels.flip(0))["mean"])  # q(z | x)
        got = dec(code["z"], labels)
        x = F.relu(F.linear(F.one_hot(labels, CLASSES).float(), dec.project.weight, dec.project.bias))
        expected = _decode(dec, code["z"] + x)  # added, not concatenated
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(code["z"], code["mean"])  # eval: the mean, no sample
    assert [m.in_features for m in dec.hidden.modules() if isinstance(m, torch.nn.Linear)] == [10, 32, 128]


def test_papers_conditioning_gives_the_label_to_both_networks():
    model = build(SPEC).eval()
    enc, dec = model["encoder"], model["decoder"]
    images, labels = _batch()
    one_hot = F.one_hot(labels, CLASSES).float()
    with torch.no_grad():
        code = enc(images, labels)
        x = torch.cat([images.flatten(1), one_hot], dim=1)  # q(z | x, y)
        for layer in enc.hidden.children():
            x = F.leaky_relu(layer.fc(x), 0.2)
        mean = enc.head(x)[:, :LATENT]
        got = dec(code["z"], labels)
        expected = _decode(dec, torch.cat([code["z"], one_hot], dim=1))  # p(x | z, y)
    torch.testing.assert_close(code["mean"], mean)
    torch.testing.assert_close(got, expected)


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
