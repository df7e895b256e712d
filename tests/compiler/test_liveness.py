"""Liveness in generated forwards: intermediates are dropped after their last read, an add
overwrites an operand only where the graph proves nothing else reads it, and outputs and
gradients stay those of the build without either (and of torchvision's models)."""

from __future__ import annotations

import importlib

import pytest
import torch
import torchvision

import engine
from engine.compiler.liveness import Step, frees
from engine.views.codegen import codegen_source
from tests.oracle import randomise_batchnorm

# the module, not the function `engine.compiler.build` of the same name
build_stage = importlib.import_module("engine.compiler.build")
HEAD = "inputs: {x: [B, 4, 6, 6]}\ngraph:\n"


def _build(spec) -> torch.nn.Module:
    """The build stage itself, on a spec name or file."""
    return build_stage.build(engine.analyze(spec))


def _plain_build(monkeypatch, spec: str) -> torch.nn.Module:
    """The build as it was before liveness: no `del`, no in-place add."""
    with monkeypatch.context() as patch:
        patch.setattr(build_stage, "inplace_operands", lambda graph, shaped: {})
        patch.setattr(build_stage, "frees", lambda steps, keep: [[] for _ in steps])
        return _build(spec)


def _codes(model: torch.nn.Module) -> str:
    return "\n".join(m.code for m in model.modules() if hasattr(m, "code"))


def test_frees_each_variable_after_its_last_read_and_keeps_the_returned():
    steps = [Step("a", frozenset({"x"})), Step("b", frozenset({"a"})), Step("c", frozenset({"a", "b"})),
             Step("unused", frozenset({"x"})), Step("d", frozenset({"c"}))]
    assert frees(steps, keep={"d"}) == [[], [], ["a", "b"], ["unused"], []]
    assert frees(steps, keep={"a"})[2] == ["b"]  # a is returned: kept
    assert frees([Step(None, frozenset({"x"})), Step("y", frozenset())], keep={"y"}) == [[], []]


def test_resnet_bottleneck_frees_intermediates_and_adds_in_place():
    model = _build("resnet50")
    code = getattr(model.layer1, "0").code
    assert "add = bn3.add_(downsample)\n    del bn3, downsample\n    relu = self.relu(add)" in code
    assert "bn1 = self.bn1(conv1)\n    del conv1\n" in code
    assert "del input" not in _codes(model)  # the caller owns its inputs
    assert model.code.splitlines()[-2:] == ["    fc = self.fc(flatten)", "    return fc"]


def test_convnext_adds_in_place_onto_the_drop_path_as_torchvision_does():
    code = getattr(getattr(_build("convnext_tiny").features, "1"), "0").code
    assert "add = stochastic_depth.add_(input)" in code


def test_codegen_writes_the_same_frees_and_in_place_add():
    source = codegen_source(engine.analyze("resnet50"))
    assert "add = bn3.add_(downsample)\n        del bn3, downsample\n" in source
    assert "add = bn3.add_(input)\n" in source  # the identity shortcut: bn3 overwritten, not input
    assert "        bn1 = self.bn1(conv1)\n        del conv1\n" in source


@pytest.mark.parametrize("spec", ["resnet50", "densenet121", "convnext_tiny", "vit_b16"])
def test_outputs_are_bit_identical_to_the_build_without_liveness(spec, monkeypatch):
    plain = _plain_build(monkeypatch, spec).eval()
    model = _build(spec).eval()
    assert "del " in _codes(model) and "del " not in _codes(plain)
    model.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 224, 224) if spec == "vit_b16" else torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))
        x = x.contiguous(memory_format=torch.channels_last)
        assert torch.equal(model(x), plain(x))


@pytest.mark.parametrize("spec", ["resnet50", "densenet121", "convnext_tiny"])
def test_outputs_equal_torchvision_with_the_same_weights(spec):
    ref = getattr(torchvision.models, spec)().eval()
    randomise_batchnorm(ref)
    model = _build(spec).eval()
    engine.load_reference_state_dict(model, ref.state_dict(), spec, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got, want = model(x), ref(x)
    assert (got - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())


@pytest.mark.parametrize("spec", ["resnet50", "densenet121", "convnext_tiny"])
def test_training_gradients_equal_torchvision(spec):
    """Forward and backward in training mode: in-place adds and frees must not break autograd
    (ConvNeXt: the add overwrites the drop path's output, itself the layer-scale product's; the
    same seed draws the same drop-path masks on both sides)."""
    ref = getattr(torchvision.models, spec)().train()
    model = _build(spec).train()
    engine.load_reference_state_dict(model, ref.state_dict(), spec, strict=True)
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(0)
    model(x).square().sum().backward()
    torch.manual_seed(0)
    ref(x).square().sum().backward()
    grads = dict(model.named_parameters())
    for name, p in ref.named_parameters():
        torch.testing.assert_close(grads[name].grad, p.grad, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("text, overwritten", [
    ("  conv: {op: conv, out: 4, k: 1}\n  add: {op: add, in: [conv, x]}\n", "conv"),
    ("  conv: {op: conv, out: 4, k: 1}\n  add: {op: add, in: [x, conv]}\n", "conv"),  # commutes
    ("  conv: {op: conv, out: 4, k: 1}\n  add: {op: add, in: [conv, x]}\n"
     "  mul: {op: mul, in: [add, conv]}\n", None),  # conv is read again later
    ("  conv: {op: conv, out: 4, k: 1}\n  sigmoid: {op: sigmoid, in: conv}\n"
     "  add: {op: add, in: [sigmoid, x]}\n", None),  # sigmoid's backward needs its output
    ("  add: {op: add, in: [x, x]}\n", None),  # the caller's tensor
    ("  conv: {op: conv, out: 4, k: 1}\n  add: {op: add, in: [conv, conv]}\n", None),  # read twice
    ("  conv: {op: conv, out: 4, k: 1}\n  drop: {op: dropout, p: 0.1}\n"
     "  add: {op: add, in: [drop, x]}\n", "drop"),  # dropout returns conv's tensor or a fresh one
    ("  drop: {op: dropout, p: 0.1}\n  add: {op: add, in: [drop, x]}\n", None),  # maybe x itself
    ("  conv: {op: conv, out: 4, k: 1}\n  sigmoid: {op: sigmoid, in: conv}\n  drop: {op: dropout, p: 0.1}\n"
     "  add: {op: add, in: [drop, x]}\n", None),  # maybe sigmoid's saved output
    ("  conv: {op: conv, out: 4, k: 1}\n  drop: {op: stochastic_depth, p: 0.5}\n"
     "  add: {op: add, in: [drop, x]}\n  add2: {op: add, in: [add, conv]}\n", None),  # conv read again
    ("  w: {op: parameter, shape: [4, 1, 1], init: 0}\n  conv: {op: conv, out: 4, k: 1, in: x}\n"
     "  add: {op: add, in: [conv, w]}\n", None),  # w broadcasts: conv is [B, 4, 6, 6], w not
    ("  w: {op: parameter, shape: [1, 4, 6, 6], init: 0}\n  conv: {op: conv, out: 4, k: 1, in: w}\n"
     "  add: {op: add, in: [conv, x]}\n", None),  # made from parameters alone: batch 1
])
def test_add_overwrites_only_an_operand_nothing_else_reads(spec_file, text, overwritten):
    model = _build(spec_file(HEAD + text + "outputs: {y: add}\n" if "mul:" not in text
                       else HEAD + text + "outputs: {y: mul}\n"))
    assert (".add_(" in model.code) == (overwritten is not None)
    if overwritten:
        assert f"add = {overwritten}.add_(" in model.code
    x = torch.randn(3, 4, 6, 6)
    before = x.clone()
    x.requires_grad_(True)  # for the graph of `x + x`, which has no parameter
    model.train()(x).sum().backward()
    assert torch.equal(x.detach(), before)  # the caller's input is never overwritten


def test_add_output_read_as_a_graph_output_is_not_overwritten(spec_file):
    model = _build(spec_file(HEAD + "  conv: {op: conv, out: 4, k: 1}\n  add: {op: add, in: [conv, x]}\n"
                       "  add2: {op: add, in: [add, x]}\noutputs: {y: add2, z: add}\n"))
    assert "add2 = add.add_(" not in model.code and "add = conv.add_(x)" in model.code
    x = torch.randn(3, 4, 6, 6)
    out = model(x)
    torch.testing.assert_close(out["y"], out["z"] + x)
