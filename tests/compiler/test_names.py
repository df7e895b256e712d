"""One name rule (engine/compiler/names.py): whatever validate accepts, build and codegen use;
whatever they cannot use, validate refuses with a located error."""

from __future__ import annotations

import importlib.util
import keyword
import re
from collections import OrderedDict

import pytest
import torch

from engine.compiler import SpecError, analyze
from engine.compiler.build import build, variables
from engine.compiler.names import name_problem
from engine.views.codegen import write_codegen
from engine.views.render import render_dot
from engine.views.summary import format_summary, summarize

SPEC = "name: names\ninputs: {{x: [B, 4]}}\ngraph:\n  '{name}': {{op: linear, out: 3}}\n"


def spec(tmp_path, name: str):
    path = tmp_path / "names.yaml"
    path.write_text(SPEC.format(name=name), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["in", "class", "self", "0", "lambda", "code_1", "fc_2"])
def test_keywords_and_digits_name_modules_that_build_and_generate_code(tmp_path, name):
    model = build(analyze(spec(tmp_path, name)))
    reference = torch.nn.Linear(4, 3)
    reference.load_state_dict({k.split(".", 1)[1]: v for k, v in model.state_dict().items()})
    assert list(model.state_dict()) == [f"{name}.weight", f"{name}.bias"]
    x = torch.randn(2, 4)
    torch.testing.assert_close(model(x), reference(x))
    file = write_codegen(analyze(spec(tmp_path, name)), tmp_path / "model.py")
    module_spec = importlib.util.spec_from_file_location("generated_names", file)
    generated = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(generated)
    twin = generated.Names()
    twin.load_state_dict(model.state_dict())
    torch.testing.assert_close(twin(x), reference(x))


@pytest.mark.parametrize("name, says", [
    ("naïve", "must be ASCII letters"), ("a b", "must be ASCII letters"),
    ("x.y", "must be ASCII letters"), ("__class__", "clashes with nn.Module's own attribute"),
    ("_modules", "clashes"), ("training", "clashes with nn.Module.training"),
    ("forward", "clashes with nn.Module.forward"), ("param_inits", "clashes")])
def test_names_build_cannot_use_are_refused_when_validating(tmp_path, name, says):
    with pytest.raises(SpecError) as err:
        analyze(spec(tmp_path, name))
    assert says in str(err.value) and "names.yaml:4:" in str(err.value)


def test_an_input_may_be_named_like_a_module_attribute(tmp_path):
    """Inputs are variables of the forward, not attributes: `code` names an input fine."""
    path = tmp_path / "code.yaml"
    path.write_text("name: c\ninputs: {code: [B, 4]}\ngraph:\n  fc: {op: linear, out: 3}\n")
    assert build(analyze(path))(torch.randn(2, 4)).shape == (2, 3)


# ---- `-` in node and repeat child names (torchvision RegNet's `block2-0`) ----------------------

DASHED = """\
name: dashed
inputs: {x: [B, 4]}
blocks:
  unit:
    inputs: [h]
    nodes:
      fc-a: {op: linear, out: 4}
      fc_a: {op: linear, out: 4, in: h}
      sum-1: {op: add, in: [fc-a, fc_a]}
graph:
  block1-0: {op: linear, out: 4}
  block1_0: {op: linear, out: 4, in: x}
  block1_0_: {op: linear, out: 4, in: x}
  sum: {op: add, in: [block1-0, block1_0, block1_0_]}
  stage: {op: linear, out: 4, repeat: 2, names: "block${i + 2}-0"}
  res-1: unit
  scale-1: {op: parameter, shape: [4]}
  out-1: {op: mul, in: [res-1, scale-1]}
"""


class _Unit(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.add_module("fc-a", torch.nn.Linear(4, 4))
        self.fc_a = torch.nn.Linear(4, 4)

    def forward(self, h):
        return getattr(self, "fc-a")(h) + self.fc_a(h)


class _Dashed(torch.nn.Module):
    """The DASHED spec by hand."""

    def __init__(self):
        super().__init__()
        self.add_module("block1-0", torch.nn.Linear(4, 4))
        self.block1_0 = torch.nn.Linear(4, 4)
        self.block1_0_ = torch.nn.Linear(4, 4)
        self.stage = torch.nn.Sequential(OrderedDict([("block2-0", torch.nn.Linear(4, 4)),
                                                      ("block3-0", torch.nn.Linear(4, 4))]))
        self.add_module("res-1", _Unit())
        self.register_parameter("scale-1", torch.nn.Parameter(torch.zeros(4)))

    def forward(self, x):
        s = getattr(self, "block1-0")(x) + self.block1_0(x) + self.block1_0_(x)
        return getattr(self, "res-1")(self.stage(s)) * getattr(self, "scale-1")


@pytest.fixture
def dashed(tmp_path):
    path = tmp_path / "dashed.yaml"
    path.write_text(DASHED, encoding="utf-8")
    return path


def test_dashed_names_build_with_their_names_in_the_state_dict(dashed):
    model = build(analyze(dashed))
    keys = list(model.state_dict())
    for key in ("block1-0.weight", "block1_0.weight", "block1_0_.weight", "stage.block2-0.weight",
                "stage.block3-0.bias", "res-1.fc-a.weight", "res-1.fc_a.weight", "scale-1"):
        assert key in keys
    reference = _Dashed()
    reference.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        reference.get_parameter("scale-1").uniform_(0.5, 1.5)
        model.get_parameter("scale-1").copy_(reference.get_parameter("scale-1"))
    x = torch.randn(3, 4)
    torch.testing.assert_close(model(x), reference(x))
    assert "getattr(self, 'block1-0')" in model.code
    compile(model.code, "<forward>", "exec")  # every variable a valid, distinct identifier


def test_dashed_names_in_generated_code_load_strictly_and_compute_the_same(dashed, tmp_path):
    shaped = analyze(dashed)
    model = build(shaped)
    with torch.no_grad():
        model.get_parameter("scale-1").uniform_(0.5, 1.5)
    file = write_codegen(shaped, tmp_path / "dashed_model.py")
    module_spec = importlib.util.spec_from_file_location("generated_dashed", file)
    generated = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(generated)
    twin = generated.build()
    twin.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(3, 4)
    torch.testing.assert_close(twin(x), model(x))


def test_dashed_names_render_and_summarise(dashed):
    shaped = analyze(dashed)
    dot = render_dot(shaped, depth=3)
    ids = re.findall(r'^\s+"(n_[^"]+)" \[', dot, flags=re.M)
    assert len(ids) == len(set(ids))  # block1-0, block1_0 and block1_0_: three boxes
    assert {"n_block1-0", "n_block1_0", "n_block1_0_"} <= set(ids)
    text = format_summary(summarize(shaped, depth=3))
    assert "block1-0" in text and "block2-0" in text and "fc-a" in text


def test_every_graph_gets_distinct_variables():
    names = ["x", "block2-0", "block2_0", "0", "_0", "in", "in_", "self", "block2_0_"]
    got = variables(names)
    assert len(set(got.values())) == len(names)
    assert all(v.isidentifier() and not keyword.iskeyword(v) and v != "self" for v in got.values())
    assert got["block2_0"] == "block2_0" and got["_0"] == "_0" and got["x"] == "x"
    assert variables(["torch", "x"], avoid={"torch"})["torch"] == "torch_"


@pytest.mark.parametrize("name", ["-", "a-", "1-2", "block2-0"])
def test_dashed_names_are_accepted(name):
    assert name_problem(name) is None
    assert name_problem(name, "repeat child name") is None


def test_an_input_name_may_not_have_a_dash(tmp_path):
    path = tmp_path / "dash_input.yaml"
    path.write_text("name: d\ninputs: {x-1: [B, 4]}\ngraph:\n  fc: {op: linear, out: 3}\n")
    with pytest.raises(SpecError) as err:
        analyze(path)
    assert "input name 'x-1' must be ASCII letters, digits and _" in str(err.value)


def test_a_repeat_child_name_with_a_dot_is_refused(tmp_path):
    path = tmp_path / "dots.yaml"
    path.write_text('name: d\ninputs: {x: [B, 4]}\ngraph:\n'
                    '  stage: {op: linear, out: 4, repeat: 2, names: "b.${i}"}\n')
    with pytest.raises(SpecError) as err:
        analyze(path)
    assert "repeat child name 'b.0' must be ASCII letters, digits and _ or -" in str(err.value)


def test_names_whose_variables_would_collide_stay_apart(tmp_path):
    """`0` is written `_0` and `in` `in_`: nodes literally named `_0` and `in_` beside them."""
    path = tmp_path / "apart.yaml"
    path.write_text("name: apart\ninputs: {x: [B, 4]}\ngraph:\n"
                    "  '0': {op: linear, out: 4}\n  _0: {op: linear, out: 4, in: x}\n"
                    "  in: {op: linear, out: 4, in: x}\n  in_: {op: linear, out: 4, in: x}\n"
                    "  add: {op: add, in: ['0', _0, in, in_]}\n")
    model = build(analyze(path))
    x = torch.randn(2, 4)
    want = sum(getattr(model, n)(x) for n in ("0", "_0", "in", "in_"))
    torch.testing.assert_close(model(x), want)
    file = write_codegen(analyze(path), tmp_path / "apart_model.py")
    module_spec = importlib.util.spec_from_file_location("generated_apart", file)
    generated = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(generated)
    twin = generated.build()
    twin.load_state_dict(model.state_dict(), strict=True)
    torch.testing.assert_close(twin(x), want)
