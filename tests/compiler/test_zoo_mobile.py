"""The mobile classifiers (MobileNet V2, V3 large/small, MNASNet) against torchvision, the oracle:
width scaling, same outputs, MACs; summary and codegen work. (Parameter counts and state_dict keys
and shapes of the whole zoo: tests/compiler/test_zoo.py.)"""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torchvision

import engine
import engine.views.codegen as codegen
from engine.compiler.load import load_file
from engine.compiler.merge import SPECS_DIR
from engine.views.summary import summarize
from tests.oracle import randomise_batchnorm

# spec name -> torchvision builder (default arguments, 1000 classes)
MOBILE = {
    "mobilenet_v2": "mobilenet_v2",
    "mobilenet_v3_large": "mobilenet_v3_large",
    "mobilenet_v3_small": "mobilenet_v3_small",
    **{f"mnasnet{a}": f"mnasnet{a}" for a in ("0_5", "0_75", "1_0", "1_3")},
}
NUMERIC = ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "mnasnet1_0"]
BASES = {"mobilenet_v2", "mobilenet_v3_large", "mnasnet1_0"}
# torchvision's published GFLOPS (its weights' meta "_ops", 224x224) are these MACs, rounded
WEIGHTS = {"mobilenet_v2": "MobileNet_V2_Weights", "mobilenet_v3_large": "MobileNet_V3_Large_Weights",
           "mobilenet_v3_small": "MobileNet_V3_Small_Weights",
           **{f"mnasnet{a}": f"MNASNet{a}_Weights" for a in ("0_5", "0_75", "1_0", "1_3")}}
SIZE = 64  # global pooling: any image of 32 pixels or more runs


def _reference(spec: str, **kwargs) -> torch.nn.Module:
    return getattr(torchvision.models, MOBILE[spec])(**kwargs)


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("spec, width", [("mobilenet_v2", 0.5), ("mobilenet_v3_large", 0.75),
                                         ("mobilenet_v3_small", 1.3)])
def test_width_mult_scales_as_torchvision(spec, width):
    with torch.device("meta"):
        ref = _reference(spec, width_mult=width)
    assert _shapes(engine.build(spec, device="meta", width_mult=width)) == _shapes(ref)


@pytest.mark.parametrize("spec", NUMERIC)
def test_loads_torchvision_weights_and_matches_outputs(spec):
    torch.manual_seed(0)
    ref = _reference(spec).eval()
    randomise_batchnorm(ref)
    model = engine.build(spec).eval()
    engine.load_reference_state_dict(model, ref.state_dict(), spec, strict=True)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        got, want = model(x), ref(x)
    tolerance = 1e-5 * max(1.0, want.abs().max().item())
    assert (got - want).abs().max().item() <= tolerance


@pytest.mark.parametrize("spec", sorted(set(MOBILE) - BASES))
def test_variants_extend_a_base(spec):
    doc = load_file(SPECS_DIR / f"{spec}.yaml")
    assert "extends" in doc, f"{spec} should be an `extends:` of its family's base"


@pytest.mark.parametrize("spec", MOBILE)
def test_summary_totals_and_macs_equal_torchvision(spec):
    summary = summarize(engine.analyze(spec))
    with torch.device("meta"):
        ref = _reference(spec)
    assert summary.params == summary.trainable == sum(p.numel() for p in ref.parameters())
    published = getattr(torchvision.models, WEIGHTS[spec]).DEFAULT.meta["_ops"]
    assert round(summary.macs / 1e9, 3) == published


def test_summary_table_names_the_blocks():
    from engine.views.summary import format_summary
    text = format_summary(summarize(engine.analyze("mobilenet_v3_large"), depth=2))
    assert "features" in text and "classifier" in text and "5,483,032" in text


def test_codegen_round_trips_mobilenet_v3_large(tmp_path):
    shaped = engine.analyze("mobilenet_v3_large")
    path = codegen.write_codegen(shaped, tmp_path / "mobilenet_v3_large_generated.py")
    torch.manual_seed(0)
    model = engine.build(shaped.spec.file).eval()
    randomise_batchnorm(model)
    module_spec = importlib.util.spec_from_file_location("mobilenet_v3_large_generated", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    torch.manual_seed(1)  # another initialisation: only the loaded state_dict may matter
    generated = module.build().eval()
    generated.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        got, want = generated(x), model(x)
    assert (got - want).abs().max().item() <= 1e-6 * max(1.0, want.abs().max().item())
