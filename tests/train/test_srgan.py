"""SRGAN's two phases on CI-sized runs: phase 1 (super_resolve, `network: generator`) trains the
SRResNet alone; phase 2 (procedure srgan) trains both networks from the phase-1 generator, with
the VGG54 content loss (a random VGG19 stands in for the ImageNet one: nothing is downloaded) or
the pixel MSE; `engine eval` and `engine infer` on a phase-2 run."""

from __future__ import annotations

import csv
import math
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from torch.utils.data import default_collate

from engine.cli import main
from engine.compiler.ir import SpecError
from tests.conftest import needs_data as skip_unless_data

from .test_super_resolve import needs_data, sets  # noqa: F401  (needs_data: an autouse fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = "spec.set={blocks: 1, features: 8, size: 8, hr_size: 32}"  # x4: 8x8 LR -> 32x32 HR
CI = [TINY, "data.args.patch=32", "epochs=null", "steps=2", "data.batch_size=2",
      "data.args.repeat=1", "eval.every_epochs=1"]


def ci_run(name: str, folder: Path, *extra: str):
    from engine.train.recipe import load_recipe
    from engine.train.runner import Run
    return Run(load_recipe(name, [*CI, *extra]), folder, "cpu")


def train(name: str, out: Path, *extra: str) -> Path:
    argv = ["train", name, "--device", "cpu", "--output", str(out), *sets([*CI, *extra])]
    assert main(argv) == 0
    (folder,) = [p for p in out.iterdir() if p.name.startswith(name + "-")]
    return folder


def fixed_batch(run, n: int = 2):
    torch.manual_seed(0)
    return default_collate([run.train_set[i] for i in range(n)])


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def phase1(tmp_path_factory) -> Path:
    """best.pt of a 2-step phase-1 run (srresnet_x4, CI-sized)."""
    skip_unless_data("sr_benchmarks/CBSD68")
    folder = train("srresnet_x4", tmp_path_factory.mktemp("srresnet"))
    return folder / "checkpoints" / "best.pt"


@pytest.fixture(scope="module")
def random_vgg19():
    torch.manual_seed(0)
    return torchvision.models.vgg19().eval()  # random weights: the ImageNet ones need the internet


@pytest.fixture
def fake_vgg(monkeypatch, random_vgg19):
    """torchvision's vgg19 replaced by the random one; records the weights asked for."""
    asked = []

    def vgg19(weights=None, **kwargs):
        asked.append(weights)
        return random_vgg19

    monkeypatch.setattr(torchvision.models, "vgg19", vgg19)
    return asked


# ---- phase 1 --------------------------------------------------------------------------------
def test_phase1_trains_only_the_generator(tmp_path):
    run = ci_run("srresnet_x4", tmp_path / "run", "optimizer.lr=0.001")
    procedure, model = run.procedure, run.procedure.unwrapped
    (optimizer,) = procedure.optimizers.values()
    optimised = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert optimised == {id(p) for p in model["generator"].parameters()}
    discriminator = snapshot(model["discriminator"])
    procedure.train_mode()
    batch = fixed_batch(run)
    losses = [procedure.train_step(batch)["loss"] for _ in range(8)]
    assert losses[-1] < losses[0], losses
    for name, value in model["discriminator"].state_dict().items():
        torch.testing.assert_close(value, discriminator[name], msg=name)
    assert all(p.grad is None for p in model["discriminator"].parameters())


def test_phase1_evaluates_the_generator(tmp_path):
    metrics = ci_run("srresnet_x4", tmp_path / "run").evaluate("val")
    for key in ("loss", "psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y"):
        assert math.isfinite(metrics[key]), key


@pytest.mark.parametrize("network, message", [
    ("null", "the spec has networks generator, discriminator; procedure.network picks none"),
    ("gen", "none is named 'gen'"),
])
def test_network_option_names_the_networks(tmp_path, network, message):
    with pytest.raises(SpecError, match=message) as err:
        ci_run("srresnet_x4", tmp_path / "run", f"procedure.network={network}")
    assert "one of generator, discriminator" in err.value.diagnostics[0].hint


def test_network_option_on_a_one_network_spec(tmp_path):
    from engine.train.recipe import load_recipe
    from engine.train.runner import Run
    recipe = load_recipe("edsr_x2", ["spec.set={features: 8, blocks: 1}", "data.args.patch=24",
                                     "procedure.network=generator"])
    with pytest.raises(SpecError, match="the spec has one network"):
        Run(recipe, tmp_path / "run", "cpu")


# ---- phase 2 --------------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["pixel", "vgg"])
def test_phase2_step_trains_both_networks(tmp_path, fake_vgg, content):
    run = ci_run("srgan_x4", tmp_path / "run", f"procedure.content={content}",
                 "procedure.generator_checkpoint=null")
    procedure, model = run.procedure, run.procedure.unwrapped
    assert set(procedure.optimizers) == {"generator", "discriminator"}
    before = snapshot(model)
    procedure.train_mode()
    values = procedure.train_step(fixed_batch(run))
    assert set(values) == {"loss", "content", "g_adv", "d_loss"}
    assert all(math.isfinite(v) for v in values.values()), values
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for network in ("generator", "discriminator"):
        changed = [k for k, v in model[network].state_dict().items()
                   if v.is_floating_point() and not torch.equal(v, before[f"{network}.{k}"])]
        assert changed, f"the {network} did not change"
    assert fake_vgg == ([torchvision.models.VGG19_Weights.IMAGENET1K_V1] if content == "vgg" else [])


def test_phase2_optimizers_per_network(tmp_path):
    run = ci_run("srgan_x4_offline", tmp_path / "run", "optimizers.discriminator.lr=0.0003")
    lrs = {k: o.param_groups[0]["lr"] for k, o in run.procedure.optimizers.items()}
    assert lrs == {"generator": 0.0001, "discriminator": 0.0003}

    from engine.train.recipe import load_recipe
    from engine.train.runner import Run
    recipe = load_recipe("srgan_x4_offline", CI)
    recipe.values["optimizers"] = {"generator": {"name": "adam", "lr": 0.0001}}  # none for D
    with pytest.raises(SpecError, match="needs an optimizer for the discriminator"):
        Run(recipe, tmp_path / "run2", "cpu")


def test_generator_checkpoint_loads_phase1_weights(phase1, tmp_path, capsys):
    run = ci_run("srgan_x4_offline", tmp_path / "run",
                 f"procedure.generator_checkpoint={phase1}")
    model = run.procedure.unwrapped
    discriminator = snapshot(model["discriminator"])
    run.procedure.start_training()
    saved = torch.load(phase1, weights_only=True)["procedure"]["model"]
    generator = model["generator"].state_dict()
    assert generator
    for name, value in generator.items():
        torch.testing.assert_close(value, saved[f"generator.{name}"], msg=name)
    for name, value in model["discriminator"].state_dict().items():  # D starts fresh
        torch.testing.assert_close(value, discriminator[name], msg=name)
    assert f"generator weights from {phase1}" in capsys.readouterr().out


def test_the_cpu_sized_phases_share_one_generator():
    """srgan_x4_w32 starts from srresnet_x4_w32's best.pt: its glob names that recipe's runs, and
    both build the same generator (32 features), so the weights load."""
    from engine.compiler.build import build
    from engine.train.recipe import load_recipe
    phase1, phase2 = (load_recipe(name) for name in ("srresnet_x4_w32", "srgan_x4_w32"))
    assert phase2.doc["procedure"]["generator_checkpoint"] == "runs/srresnet_x4_w32-*/checkpoints/best.pt"
    shapes = [{k: v.shape for k, v in build(r.shaped, device="meta")["generator"].state_dict().items()}
              for r in (phase1, phase2)]
    assert shapes[0] == shapes[1] and shapes[0]["head.weight"][0] == 32


def test_generator_checkpoint_errors(phase1, tmp_path, capsys):
    missing = ci_run("srgan_x4_offline", tmp_path / "a",
                     f"procedure.generator_checkpoint={tmp_path}/runs/*/best.pt")
    with pytest.raises(SpecError, match="matches no file") as err:
        missing.procedure.start_training()
    assert "engine train recipes/srresnet_x4.yaml" in err.value.diagnostics[0].hint
    wider = ci_run("srgan_x4_offline", tmp_path / "b", "spec.set.features=16",
                   f"procedure.generator_checkpoint={phase1}")
    with pytest.raises(SpecError, match="does not fit this generator"):
        wider.procedure.start_training()
    scratch = ci_run("srgan_x4_offline", tmp_path / "c", "procedure.generator_checkpoint=null")
    scratch.procedure.start_training()
    assert "starts from scratch" in capsys.readouterr().out


def test_vgg_content_loss_by_hand(tmp_path, fake_vgg, random_vgg19):
    """VGG54: the MSE of features[:36] (through conv5_4's ReLU, before the 5th max-pool) of the
    ImageNet-normalised images, each scaled by vgg_rescale."""
    features = random_vgg19.features
    assert isinstance(features[34], torch.nn.Conv2d) and isinstance(features[35], torch.nn.ReLU)
    assert isinstance(features[36], torch.nn.MaxPool2d)
    procedure = ci_run("srgan_x4", tmp_path / "run", "amp=false").procedure
    sr, hr = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        phi_sr, phi_hr = (features[:36]((x - mean) / std) for x in (sr, hr))
    assert phi_sr.shape == (2, 512, 2, 2)  # four max-pools: 32 -> 2
    expected = ((phi_sr - phi_hr) / 12.75).pow(2).mean()
    torch.testing.assert_close(procedure.content_loss(sr, hr), expected)


def test_missing_vgg_weights_says_what_to_do(tmp_path, monkeypatch):
    def offline(weights=None, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models, "vgg19", offline)
    run = ci_run("srgan_x4", tmp_path / "run", "procedure.generator_checkpoint=null")
    with pytest.raises(SpecError) as err:
        run.procedure.train_step(fixed_batch(run))
    (d,) = err.value.diagnostics
    assert "cannot be obtained" in d.message and "name resolution" in d.message
    assert "vgg19-dcbb9e9d.pth" in d.message and d.path == "procedure.content"
    assert "procedure.content=pixel" in d.hint and "hub/checkpoints" in d.hint


def test_discriminator_patch_side_is_checked(tmp_path):
    run = ci_run("srgan_x4_offline", tmp_path / "run", "data.args.patch=48",
                 "procedure.generator_checkpoint=null")
    with pytest.raises(SpecError, match="takes 32x32 HR patches, the batch has 48x48"):
        run.procedure.train_step(fixed_batch(run))


# ---- the command line on a phase-2 run -------------------------------------------------------
def test_phase2_train_eval_infer(phase1, tmp_path, capsys):
    extra = [f"procedure.generator_checkpoint={phase1}"]
    folder = train("srgan_x4_offline", tmp_path / "runs", *extra)
    with (folder / "metrics.csv").open() as f:
        row = list(csv.DictReader(f))[-1]
    for key in ("train_loss", "train_d_loss", "train_g_adv", "val_psnr_y", "val_bicubic_psnr_y"):
        assert math.isfinite(float(row[key])), key
    last = folder / "checkpoints" / "last.pt"
    assert last.is_file() and not (folder / "checkpoints" / "best.pt").exists()
    assert f"generator weights from {phase1}" in capsys.readouterr().out

    flags = ["--checkpoint", str(last), "--device", "cpu", *sets([*CI, *extra])]
    assert main(["eval", "srgan_x4_offline", *flags, "--split", "test"]) == 0
    assert "psnr_y" in capsys.readouterr().out
    image = tmp_path / "small.png"
    Image.fromarray((torch.rand(10, 14, 3) * 255).to(torch.uint8).numpy()).save(image)
    assert main(["infer", "srgan_x4_offline", *flags, str(image), "-o", str(tmp_path / "out")]) == 0
    with Image.open(tmp_path / "out" / "small_x4.png") as written:
        assert written.size == (56, 40) and written.mode == "RGB"
    figure = tmp_path / "sr.png"
    assert main(["sample", "srgan_x4_offline", *flags, "-n", "2", "-o", str(figure)]) == 0
    assert figure.is_file() and "bicubic" in capsys.readouterr().out
