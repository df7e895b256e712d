"""The super-resolution recipes (procedure super_resolve) on CI-sized runs: train, gradients,
the bicubic baseline, best.pt by PSNR, `engine infer` and `engine sample`."""

from __future__ import annotations

import csv
import math
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import default_collate

from engine.cli import main
from tests.conftest import needs_data as skip_unless_data

pytestmark = pytest.mark.usefixtures("one_thread")

# each recipe CI-sized: narrow networks on 24x24 HR patches, one patch per training image
CI_SIZED = {
    "srcnn_x3": ["data.args.patch=24"],
    "espcn_x3": ["data.args.patch=24"],
    "drcn_x234": ["data.args.patch=24", "spec.set={features: 8, depth: 3}"],
    "drcn_x3": ["data.args.patch=24", "spec.set={channels: 1, features: 8, depth: 3}"],
    "drrn_x3": ["data.args.patch=24", "spec.set={channels: 1, features: 8, units: 3}"],
    "srresnet_x4_w32": ["data.args.patch=32", "spec.set={blocks: 1, features: 8, size: 8, hr_size: 32}"],
    "edsr_x2": ["data.args.patch=24", "spec.set={features: 8, blocks: 2}"],
}
STEPS = ["epochs=null", "steps=2", "data.batch_size=2", "data.args.repeat=1", "eval.every_epochs=1"]


@pytest.fixture(autouse=True)
def needs_data():
    skip_unless_data("sr_benchmarks/CBSD68")


def sets(items) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def overrides(name: str) -> list[str]:
    return [*STEPS, *CI_SIZED[name]]


def train(name: str, out: Path) -> Path:
    assert main(["train", name, "--device", "cpu", "--output", str(out), *sets(overrides(name))]) == 0
    (folder,) = [p for p in out.iterdir() if p.name.startswith(name + "-")]
    return folder


def ci_run(name: str, folder: Path, extra: tuple[str, ...] = ()):
    from engine.train.recipe import load_recipe
    from engine.train.runner import Run
    return Run(load_recipe(name, [*overrides(name), *extra]), folder, "cpu")


RGB = ("procedure.y_only=false", "spec.set={channels: 3}")  # srcnn_x3 as an RGB network


def last_row(folder: Path) -> dict:
    with (folder / "metrics.csv").open() as f:
        return list(csv.DictReader(f))[-1]


@pytest.fixture(scope="module")
def edsr_checkpoint(tmp_path_factory) -> Path:
    skip_unless_data("sr_benchmarks/CBSD68")
    folder = train("edsr_x2", tmp_path_factory.mktemp("edsr"))
    return folder / "checkpoints" / "best.pt"


@pytest.mark.parametrize("name", ["srcnn_x3", "espcn_x3", "drcn_x234", "drcn_x3", "drrn_x3",
                                  "srresnet_x4_w32"])
def test_ci_run(name, tmp_path):
    folder = train(name, tmp_path)
    row = last_row(folder)
    for key in ("train_loss", "val_loss", "val_psnr_y", "val_ssim_y", "val_bicubic_psnr_y"):
        assert math.isfinite(float(row[key])), key
    assert 15 < float(row["val_bicubic_psnr_y"]) < 50
    assert (folder / "checkpoints" / "best.pt").is_file()


def test_edsr_ci_run(edsr_checkpoint):
    row = last_row(edsr_checkpoint.parent.parent)
    assert math.isfinite(float(row["train_loss"])) and math.isfinite(float(row["val_psnr_y"]))
    assert edsr_checkpoint.is_file()


@pytest.mark.parametrize("name", list(CI_SIZED))
def test_every_parameter_gets_a_gradient(name, tmp_path):
    run = ci_run(name, tmp_path / "run")
    procedure = run.procedure
    procedure.train_mode()
    if name == "drcn_x234":
        assert procedure.alpha() == 1.0  # recursive supervision at full weight on step 0
    values = procedure.train_step(default_collate([run.train_set[i] for i in range(2)]))
    assert math.isfinite(values["loss"])
    trained = run.recipe.doc["procedure"].get("network")  # SRResNet: the generator of srgan
    for pname, p in procedure.unwrapped.named_parameters():
        if trained and not pname.startswith(f"{trained}."):
            assert p.grad is None, pname  # built, but not this procedure's network
            continue
        if not p.requires_grad:
            assert "mean" in pname, pname  # only EDSR's frozen mean shift
            continue
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    if name == "drcn_x234":
        assert procedure.steps_done == 1 and procedure.alpha() == 0.0  # half of 2 steps: decayed


def test_recursive_supervision_weight(tmp_path):
    """DRCN's loss: alpha * mean of the steps' losses + (1 - alpha) * the final loss."""
    procedure = ci_run("drcn_x234", tmp_path / "run").procedure
    hr = torch.rand(2, 3, 8, 8)
    image, steps = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 3, 8, 8)
    per_step = torch.stack([F.mse_loss(steps[:, d], hr) for d in range(3)]).mean()
    final = F.mse_loss(image, hr)
    torch.testing.assert_close(procedure.objective(image, steps, hr), per_step)  # alpha 1
    procedure.total_steps, procedure.steps_done = 8, 2  # a quarter of the way: alpha 0.5
    torch.testing.assert_close(procedure.objective(image, steps, hr), 0.5 * per_step + 0.5 * final)
    procedure.steps_done = 4
    torch.testing.assert_close(procedure.objective(image, steps, hr), final)


def test_multi_scale_run_needs_a_scale_to_infer_and_an_upscaling_network(tmp_path):
    from engine.compiler.ir import SpecError
    run = ci_run("drcn_x234", tmp_path / "run")
    with pytest.raises(SpecError, match=r"several scales \[2, 3, 4\]") as err:
        run.procedure.recipe_scale(run)
    assert "procedure.scale" in str(err.value)
    run.procedure.options["scale"] = 3
    assert run.procedure.recipe_scale(run) == 3
    # upscaled (HR-size) pairs reach an LR-input network: a clear error, not a wrong scale of 1
    run.procedure.options.update(scale=None, upscaled_input=False)
    with pytest.raises(SpecError, match="upscaled_input"):
        run.procedure.scale_of(torch.rand(1, 3, 12, 12), torch.rand(1, 3, 12, 12))


def independent_psnr_y(output: torch.Tensor, target: torch.Tensor, border: int) -> torch.Tensor:
    def y(x):
        x = x.double()
        return (16 + 65.481 * x[:, 0] + 128.553 * x[:, 1] + 24.966 * x[:, 2]) / 255
    a = y(output)[:, border:-border, border:-border]
    b = y(target)[:, border:-border, border:-border]
    return 10 * torch.log10(1 / (a - b).pow(2).flatten(1).mean(1))


@pytest.mark.parametrize("name", ["srcnn_x3", "edsr_x2"])
def test_bicubic_baseline(name, tmp_path):
    run = ci_run(name, tmp_path / "run")
    scale = {"srcnn_x3": 3, "edsr_x2": 2}[name]
    lr, hr = default_collate([run.eval_sets["val"][i] for i in range(3)])
    values = run.procedure.eval_step((lr, hr), [])
    up = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)
    up = (up.clamp(0, 1) * 255).round() / 255
    torch.testing.assert_close(values["bicubic_psnr_y"], independent_psnr_y(up, hr, scale))
    assert values["psnr_y"].shape == values["ssim_y"].shape == values["loss"].shape == (3,)


def test_bicubic_model_scores_the_baseline(tmp_path):
    """A network that returns its (bicubic-upscaled) input scores exactly the baseline."""
    run = ci_run("srcnn_x3", tmp_path / "run", RGB)
    run.procedure.eval_model().forward = lambda x: x
    metrics = run.evaluate("val")
    assert metrics["psnr_y"] == metrics["bicubic_psnr_y"]
    assert metrics["ssim_y"] == metrics["bicubic_ssim_y"]

    run = ci_run("espcn_x3", tmp_path / "run2")  # an LR-input model replaced by the upscale
    from engine.train.procedures.super_resolve import bicubic_upscale
    run.procedure.eval_model().forward = lambda x: bicubic_upscale(x, 3)
    metrics = run.evaluate("val")
    assert metrics["psnr_y"] == metrics["bicubic_psnr_y"]


def test_best_checkpoint_by_psnr(tmp_path):
    from engine.train.procedures.base import Procedure
    from engine.train.procedures.super_resolve import SuperResolve
    from engine.train.runner import Position, Run

    def fake(procedure_class):
        saved = []
        run = types.SimpleNamespace(procedure=types.SimpleNamespace(
            tracks_best=True, best_metric=procedure_class.best_metric),
            recipe={"eval": {"split": "val"}}, position=Position(), saved=saved)
        run.save = lambda which: saved.append(len(run.rows))
        run.rows = []
        return run

    rows = [{"val_psnr_y": 20.0, "val_loss": 0.5}, {"val_psnr_y": 22.0, "val_loss": 0.9},
            {"val_psnr_y": 21.0, "val_loss": 0.1}, {"train_loss": 0.05}]
    for cls, expected in ((SuperResolve, [1, 2]), (Procedure, [1, 3])):
        run = fake(cls)
        for row in rows:
            run.rows.append(row)
            Run.track_best(run, row)
        assert run.saved == expected, cls.__name__


def test_infer_writes_the_upscaled_image(edsr_checkpoint, tmp_path):
    image = tmp_path / "small.png"
    Image.fromarray((torch.rand(14, 20, 3) * 255).to(torch.uint8).numpy()).save(image)
    out = tmp_path / "out"
    argv = ["infer", "edsr_x2", "--checkpoint", str(edsr_checkpoint), "--device", "cpu",
            *sets(CI_SIZED["edsr_x2"]), str(image), "-o", str(out)]
    assert main(argv) == 0
    with Image.open(out / "small_x2.png") as written:
        assert written.size == (40, 28) and written.mode == "RGB"
    missing = ["infer", "edsr_x2", "--checkpoint", str(edsr_checkpoint), "--device", "cpu",
               *sets(CI_SIZED["edsr_x2"]), str(tmp_path / "nope.png")]
    assert main(missing) == 1


def test_infer_missing_file_names_it(edsr_checkpoint, tmp_path):
    from engine.compiler.ir import SpecError
    from engine.train.runner import open_checkpoint
    run = open_checkpoint("edsr_x2", CI_SIZED["edsr_x2"], str(edsr_checkpoint), "cpu")
    args = types.SimpleNamespace(inputs=[str(tmp_path / "nope.png")], output=None)
    with pytest.raises(SpecError, match="nope.png"):
        list(run.procedure.infer(run, args))


def test_sample_writes_before_after(edsr_checkpoint, tmp_path, capsys):
    output = tmp_path / "sr.png"
    argv = ["sample", "edsr_x2", "--checkpoint", str(edsr_checkpoint), "--device", "cpu",
            *sets(CI_SIZED["edsr_x2"]), "-n", "2", "-o", str(output)]
    assert main(argv) == 0
    assert output.is_file() and output.stat().st_size > 1000
    assert "bicubic" in capsys.readouterr().out


def test_eval_on_a_benchmark(edsr_checkpoint, capsys):
    """The recipes' documented override: sr_patches' args (patch, repeat) are ignored by sr_benchmark."""
    argv = ["eval", "edsr_x2", "--checkpoint", str(edsr_checkpoint), "--device", "cpu",
            *sets([*CI_SIZED["edsr_x2"], "data.dataset=sr_benchmark", "data.args.set=Set5",
                   "data.eval_batch_size=1"])]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "(5 samples)" in out and "bicubic_psnr_y 33." in out


def test_y_only_trains_on_luma_and_joins_the_bicubic_chroma(tmp_path):
    """The papers' Y-channel training: the network sees Y, the loss is on Y, the RGB output is
    the predicted Y with the chroma of the bicubic upscale."""
    from engine.train.evaluation.color import rgb_to_y, rgb_to_ycbcr
    from engine.train.procedures.super_resolve import bicubic_upscale
    sets_ = [*overrides("srcnn_x3"), "procedure.y_only=true", "spec.set={channels: 1}", "amp=false"]
    from engine.train.recipe import load_recipe
    from engine.train.runner import Run
    run = Run(load_recipe("srcnn_x3", sets_), tmp_path / "run", "cpu")
    procedure = run.procedure
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 24, 24)
    image, _ = procedure.forward(procedure.model, lr, 3)
    assert image.shape == (2, 1, 24, 24)
    # the network's input is the luma of the bicubic upscale
    expected = procedure.model(rgb_to_y(bicubic_upscale(lr, 3))).float()
    torch.testing.assert_close(image, expected)
    rgb = procedure.as_rgb(image, lr, 3)
    ycbcr, bicubic = rgb_to_ycbcr(rgb), rgb_to_ycbcr(bicubic_upscale(lr, 3))
    torch.testing.assert_close(ycbcr[:, :1], image, atol=1e-5, rtol=0)
    torch.testing.assert_close(ycbcr[:, 1:], bicubic[:, 1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(procedure.target(hr), rgb_to_y(hr))
    assert main(["train", "srcnn_x3", "--device", "cpu", "--output", str(tmp_path / "runs"),
                 *sets(sets_)]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    assert math.isfinite(float(last_row(folder)["val_psnr_y"]))


def test_y_only_with_an_rgb_network_is_a_clear_error(tmp_path):
    from engine.compiler.ir import SpecError
    from engine.train.recipe import load_recipe
    from engine.train.runner import Run
    with pytest.raises(SpecError, match="one channel") as err:
        Run(load_recipe("srcnn_x3", [*overrides("srcnn_x3"), "procedure.y_only=true", RGB[1]]),
            tmp_path / "run", "cpu")
    assert "channels: 1" in str(err.value)
