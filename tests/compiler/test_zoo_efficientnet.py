"""EfficientNet B0-B7 and EfficientNetV2 S/M/L against torchvision, the oracle: same state_dict
keys and shapes, same parameter counts (on the meta device: B7 and V2-L are never allocated), and
for B0 and V2-S the same outputs from torchvision's weights, and a standalone codegen round trip."""

from __future__ import annotations

import ast
import importlib.util
from functools import cache

import pytest
import torch
import torchvision

import engine
import engine.views.codegen as codegen
from engine.compiler.build import build
from engine.compiler.load import load_file
from engine.compiler.merge import SPECS_DIR
from engine.views.summary import node_params
from tests.oracle import randomise_batchnorm

SPECS = [*(f"efficientnet_b{n}" for n in range(8)), "efficientnet_v2_s", "efficientnet_v2_m",
         "efficientnet_v2_l"]
BASES = {"efficientnet_b0"}
NUMERIC = ["efficientnet_b0", "efficientnet_v2_s"]
IMAGE = 64  # adaptive pooling: a small image checks the same maths


@cache
def _analyzed(spec: str):
    return engine.analyze(spec)


def _reference(spec: str) -> torch.nn.Module:
    with torch.device("meta"):
        return getattr(torchvision.models, spec)()


@pytest.mark.parametrize("spec", SPECS)
def test_state_dict_and_parameter_count_equal_torchvision(spec):
    ref = _reference(spec)
    shaped = _analyzed(spec)
    seen: set[int] = set()
    params = sum(node_params(n, shaped, seen) for g in shaped.spec.networks.values() for n in g.nodes)
    assert params == sum(p.numel() for p in ref.parameters())
    model = build(shaped, device="meta")
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    # the batch-norm settings (B5-B7 and V2 differ from the default) and the head's dropout
    assert _settings(model) == _settings(ref)


def _settings(model: torch.nn.Module) -> list[tuple]:
    return [(m.eps, m.momentum) if isinstance(m, torch.nn.BatchNorm2d) else (m.p, m.inplace)
            for m in model.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout))]


@pytest.mark.parametrize("spec", NUMERIC)
def test_loads_torchvision_weights_and_matches_outputs(spec):
    torch.manual_seed(0)
    ref = getattr(torchvision.models, spec)().eval()
    randomise_batchnorm(ref)
    model = build(_analyzed(spec)).eval()
    engine.load_reference_state_dict(model, ref.state_dict(), spec, strict=True)
    x = torch.randn(1, 3, IMAGE, IMAGE)
    with torch.no_grad():
        got, want = model(x), ref(x)
    tolerance = 1e-5 * max(1.0, want.abs().max().item())
    assert (got - want).abs().max().item() <= tolerance
    # stochastic depth (training only) grows linearly over the blocks, on residual blocks only
    ours = {n: m.p for n, m in model.named_modules() if n.endswith("stochastic_depth")}
    theirs = {n: m.p if ref.get_submodule(n.rsplit(".", 1)[0]).use_res_connect else 0.0
              for n, m in ref.named_modules() if isinstance(m, torchvision.ops.StochasticDepth)}
    assert ours == pytest.approx(theirs, abs=1e-12)


def test_codegen_round_trip(tmp_path):
    spec = "efficientnet_b0"
    shaped = _analyzed(spec)
    path = codegen.write_codegen(shaped, tmp_path / f"{spec}.py")
    text = path.read_text()
    imported = {(a.name if isinstance(n, ast.Import) else n.module).split(".")[0]
                for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in (n.names if isinstance(n, ast.Import) else [n])}
    assert imported <= {"torch", "torchvision", "__future__"}, imported
    torch.manual_seed(0)
    model = build(shaped).eval()
    randomise_batchnorm(model)
    module_spec = importlib.util.spec_from_file_location(f"generated_{spec}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    torch.manual_seed(1)  # a different initialisation: only the state_dict may matter
    generated = module.build().eval()
    generated.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 3, IMAGE, IMAGE)
    with torch.no_grad():
        got, want = generated(x), model(x)
    assert (got - want).abs().max().item() <= 1e-6 * max(1.0, want.abs().max().item())


@pytest.mark.parametrize("spec", sorted(set(SPECS) - BASES))
def test_variants_extend_a_base(spec):
    doc = load_file(SPECS_DIR / f"{spec}.yaml")
    assert "extends" in doc, f"{spec} should be an `extends:` of its family's base"
    assert len((SPECS_DIR / f"{spec}.yaml").read_text().splitlines()) <= 15
