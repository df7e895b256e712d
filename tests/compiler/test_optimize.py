"""The optimized inference build (engine/compiler/optimize.py): the plain build's outputs within
1e-5 x max|out|, the folds and fusions its report lists, and the commands that use it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import engine
from engine.cli import main
from engine.compiler import analyze
from engine.compiler.build import build
from engine.compiler.optimize import PackedConv2d, ScaleShift, optimize
from tests.oracle import randomise_batchnorm

TOLERANCE = 1e-5  # of the largest output magnitude, as issue 25 asks


def plain_and_optimized(spec, params=None, **options):
    """(shaped, plain eval model with random batch-norm statistics, optimized model, report)."""
    shaped = analyze(spec, params or {})
    plain = build(shaped).eval()
    randomise_batchnorm(plain)
    optimized, report = optimize(plain, shaped, **options)
    return shaped, plain, optimized, report


def assert_close(plain: nn.Module, optimized: nn.Module, x: torch.Tensor) -> None:
    with torch.inference_mode():
        want, got = plain(x), optimized(x)
    assert got.shape == want.shape
    assert (got - want).abs().max() <= TOLERANCE * want.abs().max()


@pytest.mark.parametrize("spec, folds, fusions", [
    ("resnet18", 20, 9), ("resnet50", 53, 33), ("densenet121", 59, 120)])
def test_classifiers_match_the_plain_build(spec, folds, fusions):
    _, plain, optimized, report = plain_and_optimized(spec, {"image_size": 64})
    assert_close(plain, optimized, torch.randn(2, 3, 64, 64))
    assert len(report.folded) == folds and len(report.fused) == fusions
    assert len(report.packed) == sum(isinstance(m, nn.Conv2d) for m in plain.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in optimized.modules())


def test_resnet50_folds_every_batch_norm_into_its_conv():
    _, _, _, report = plain_and_optimized("resnet50", {"image_size": 64})
    assert ("layer1.0.bn1", "layer1.0.conv1") in report.folded
    assert ("layer1.0.downsample.1", "layer1.0.downsample.0") in report.folded
    assert ("layer1.0.relu1", "layer1.0.conv1") in report.fused
    assert "layer1.0.bn3 -> layer1.0.conv3" in report.text()
    assert report.skipped == []


def test_densenet_batch_norms_after_a_concat_become_a_scale_and_shift():
    _, _, optimized, report = plain_and_optimized("densenet121", {"image_size": 64})
    path = "features.denseblock1.denselayer1"
    assert (f"{path}.norm2", f"{path}.conv1") in report.folded
    assert (f"{path}.relu1", f"{path}.norm1") in report.fused
    assert isinstance(optimized.get_submodule(f"{path}.norm1"), ScaleShift)
    assert isinstance(optimized.get_submodule(f"{path}.conv2"), PackedConv2d)


MLP = """
name: mlp_bn
inputs: {x: [B, 12]}
graph:
  fc1:  {op: linear, out: 16}
  bn1:  batchnorm1d
  act:  relu
  fc2:  {op: linear, out: 4, bias: false}
  bn2:  batchnorm1d
outputs: {y: bn2}
"""


def test_linear_and_batchnorm1d_fold(spec_file):
    _, plain, optimized, report = plain_and_optimized(spec_file(MLP))
    assert report.folded == [("bn1", "fc1"), ("bn2", "fc2")]
    assert optimized.fc2.bias is not None  # a linear without bias gets the batch norm's
    assert_close(plain, optimized, torch.randn(5, 12))


BRANCH = """
name: branch
inputs: {image: [B, 3, 16, 16]}
graph:
  conv: {op: conv, out: 8, k: 3, pad: 1}
  bn:   batchnorm
  relu: relu
  add:  {op: add, in: [relu, conv]}
outputs: {y: add}
"""


def test_a_conv_read_elsewhere_keeps_its_batch_norm(spec_file):
    _, plain, optimized, report = plain_and_optimized(spec_file(BRANCH))
    assert report.folded == []
    assert report.skipped[0][0] == "bn" and "other readers" in report.skipped[0][1]
    assert ("relu", "bn") in report.fused  # the batch norm's ReLU joins its scale-and-shift
    assert isinstance(optimized.conv, PackedConv2d) and optimized.conv.post_op[0] == "none"
    assert_close(plain, optimized, torch.randn(2, 3, 16, 16))


def test_each_network_of_a_multi_network_spec():
    shaped, plain, optimized, report = plain_and_optimized("dcgan")
    assert any(bn.startswith("discriminator.") for bn, _ in report.folded)
    assert any(act.startswith("discriminator.") for act, _ in report.fused)  # leaky ReLUs
    for name, inputs in shaped.inputs.items():
        args = [torch.randn(2, *info.shape[1:]) for info in inputs.values()]
        with torch.inference_mode():
            want, got = plain[name](*args), optimized[name](*args)
        assert (got - want).abs().max() <= TOLERANCE * want.abs().max()
    optimized.train()
    with pytest.raises(RuntimeError, match="no training mode"):
        optimized["generator"](*[torch.randn(2, *i.shape[1:]) for i in shaped.inputs["generator"].values()])


def test_a_module_the_generated_forward_does_not_call_is_left_alone():
    shaped = analyze("resnet18", {"image_size": 32})
    plain = build(shaped).eval()
    plain.code = plain.code.replace("self.bn1(", "inlined_bn1(")  # as if the forward inlined it
    _, report = optimize(plain, shaped)
    assert ("bn1", "the generated forward does not call it") in report.skipped
    assert "conv1" in report.packed and ("relu", "conv1") not in report.fused


def test_the_model_passed_in_is_untouched():
    shaped, plain, optimized, _ = plain_and_optimized("resnet18", {"image_size": 32})
    assert isinstance(plain.bn1, nn.BatchNorm2d) and isinstance(plain.conv1, nn.Conv2d)
    assert_close(plain, optimized, torch.randn(1, 3, 32, 32))


def test_optimized_model_is_inference_only():
    _, _, optimized, _ = plain_and_optimized("resnet18", {"image_size": 32})
    assert not any(p.requires_grad for p in optimized.parameters())
    with pytest.raises(RuntimeError, match="inference-only"):
        optimized(torch.randn(1, 3, 32, 32, requires_grad=True))
    optimized.train()
    with pytest.raises(RuntimeError, match="no training mode"):
        optimized(torch.randn(1, 3, 32, 32))


def test_without_packing_only_exportable_modules_remain():
    _, plain, optimized, report = plain_and_optimized("resnet18", {"image_size": 32}, pack=False)
    assert report.packed == [] and len(report.folded) == 20
    assert not any(isinstance(m, PackedConv2d) for m in optimized.modules())
    assert_close(plain, optimized, torch.randn(1, 3, 32, 32))


def test_engine_build_optimize():
    model = engine.build("small_cnn", optimize=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_cli_build_optimize_prints_the_report(capsys):
    assert main(["build", "resnet18", "--depth", "1", "--optimize"]) == 0
    out = capsys.readouterr().out
    assert "folded 20 batch norm(s)" in out and "layer1.0.bn1 -> layer1.0.conv1" in out
    assert "fused 9 activation(s)" in out and "packed 20 conv(s)" in out


def test_export_optimize_has_no_batch_norm(tmp_path):
    from engine.views.export import export_spec
    path = export_spec("small_cnn", None, "torch-export", tmp_path / "m.pt2", optimize=True)
    program = torch.export.load(str(path))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any("batch_norm" in t for t in targets)
    assert program.module()(torch.randn(1, 1, 8, 8)).shape == (1, 10)


def test_infer_optimize_names_the_same_classes(tmp_path, capsys):
    from PIL import Image

    from tests.train.test_train import write
    recipe = write(tmp_path, epochs=1)
    assert main(["train", str(recipe), "--output", str(tmp_path / "runs")]) == 0
    image = tmp_path / "seven.png"
    Image.fromarray((torch.rand(8, 8) * 255).to(torch.uint8).numpy(), mode="L").save(image)
    checkpoint = str(next((tmp_path / "runs").glob("*/checkpoints/last.pt")))
    capsys.readouterr()
    outputs = []
    for extra in ([], ["--optimize"], ["--set", "++infer.optimize=true"]):
        assert main(["infer", str(recipe), "--checkpoint", checkpoint, str(image), *extra]) == 0
        outputs.append(capsys.readouterr())
    assert outputs[0].out == outputs[1].out == outputs[2].out
    assert "folded 2 batch norm(s)" not in outputs[0].err
    assert "folded 4 batch norm(s)" in outputs[1].err and "folded 4" in outputs[2].err
