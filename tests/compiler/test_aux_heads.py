"""Auxiliary classifiers as spec outputs (issue 26): googlenet and inception_v3 with
`aux_logits: true` against torchvision's aux_logits=True models, the oracle: a strict state_dict
load, and every output (the main logits and each aux head's) equal in training mode, where
torchvision returns them (dropout draws the same masks: both forwards start from one seed and
run their dropouts in the same order). `aux_logits: false` keeps one output and no aux weights.
The outputs' `when:` is the spec language's (docs/spec-language.md, Top level: `outputs`)."""

from __future__ import annotations

import pytest
import torch
import torchvision

import engine
from engine.compiler import SpecError
from engine.compiler.build import build
from tests.oracle import randomise_batchnorm

# spec -> (torchvision builder, input size, {spec output: torchvision's output field})
MODELS = {
    "googlenet": ("googlenet", 224, {"logits": "logits", "aux1": "aux_logits1", "aux2": "aux_logits2"}),
    "inception_v3": ("inception_v3", 299, {"logits": "logits", "aux": "aux_logits"}),
}


def built(spec: str, **params):
    return build(engine.analyze(spec, params))


@pytest.mark.parametrize("spec", MODELS)
def test_aux_heads_load_torchvision_strictly_and_match_every_output(spec):
    builder, size, fields = MODELS[spec]
    torch.manual_seed(0)
    ref = getattr(torchvision.models, builder)(aux_logits=True, init_weights=False,
                                               transform_input=False, num_classes=10)
    randomise_batchnorm(ref)
    model = built(spec, aux_logits=True, num_classes=10)
    engine.load_reference_state_dict(model, ref.state_dict(), spec, strict=True)
    ref.train()
    model.train()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.manual_seed(1)
        want = ref(x)
        torch.manual_seed(1)
        got = model(x)
    assert set(got) == set(fields)
    for name, field in fields.items():
        expected = getattr(want, field)
        tolerance = 1e-5 * max(1.0, expected.abs().max().item())
        assert (got[name] - expected).abs().max().item() <= tolerance, name


@pytest.mark.parametrize("spec", MODELS)
def test_aux_heads_are_off_by_default(spec):
    shaped = engine.analyze(spec)
    (graph,) = shaped.spec.networks.values()
    assert list(graph.outputs) == ["logits"]
    aux = engine.analyze(spec, {"aux_logits": True})
    (graph,) = aux.spec.networks.values()
    assert list(graph.outputs) == ["logits", *[k for k in MODELS[spec][2] if k != "logits"]]


def test_aux_heads_return_in_eval_mode_too():
    model = built("googlenet", aux_logits=True, num_classes=10, image_size=64).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == \
        {"logits": (1, 10), "aux1": (1, 10), "aux2": (1, 10)}


SWITCHED = """
name: switched
params: {extra: false}
inputs: {x: [B, 4]}
graph:
  fc:  {op: linear, out: 3}
  aux: {op: linear, out: 2, in: x, when: $extra}
outputs:
  logits: fc
  aux: {node: aux, when: OUTPUT_WHEN}
"""


def test_an_output_when_must_be_a_bool(tmp_path):
    path = tmp_path / "switched.yaml"
    path.write_text(SWITCHED.replace("OUTPUT_WHEN", "'${3}'"))
    with pytest.raises(SpecError, match=r"`when:` of output 'aux' must be true or false, got 3"):
        engine.analyze(path)


def test_an_output_mapping_needs_node(tmp_path):
    path = tmp_path / "switched.yaml"
    path.write_text(SWITCHED.replace("{node: aux, when: OUTPUT_WHEN}", "{from: aux}"))
    with pytest.raises(SpecError, match=r"output 'aux' must be a node name or \{node: NAME"):
        engine.analyze(path)


def test_an_output_switched_on_by_a_param(tmp_path):
    path = tmp_path / "switched.yaml"
    path.write_text(SWITCHED.replace("OUTPUT_WHEN", "$extra"))
    x = torch.randn(2, 4)
    assert tuple(built(path)(x).shape) == (2, 3)
    out = built(path, extra=True)(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"logits": (2, 3), "aux": (2, 2)}
