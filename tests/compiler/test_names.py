"""One name rule (engine/compiler/names.py): whatever validate accepts, build and codegen use;
whatever they cannot use, validate refuses with a located error."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from engine.compiler import SpecError, analyze
from engine.compiler.build import build
from engine.views.codegen import write_codegen

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
