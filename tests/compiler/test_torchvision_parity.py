"""The classifier specs against torchvision, the oracle: same state_dict keys, same outputs, same sizes."""

from __future__ import annotations

import pytest
import torch
import torchvision

import engine
from engine.views.summary import node_params
from tests.oracle import randomise_batchnorm

# spec name -> (torchvision builder, its kwargs, input size)
CANONICAL = {
    "alexnet": ("alexnet", {}, 224),
    "vgg16": ("vgg16", {}, 224),
    "vgg16_bn": ("vgg16_bn", {}, 224),
    "resnet50": ("resnet50", {}, 224),
    "googlenet": ("googlenet", {"aux_logits": False, "init_weights": True}, 224),
    "inception_v3": ("inception_v3", {"aux_logits": False, "init_weights": True}, 299),
    "densenet121": ("densenet121", {}, 224),
    "convnext_tiny": ("convnext_tiny", {}, 224),
    "vit_b16": ("vit_b_16", {}, 224),
    "squeezenet1_1": ("squeezenet1_1", {}, 224),
}
VARIANTS = {
    "alexnet": "alexnet", "squeezenet1_0": "squeezenet1_0", "squeezenet1_1": "squeezenet1_1",
    **{f"vgg{n}{bn}": f"vgg{n}{bn}" for n in (11, 13, 16, 19) for bn in ("", "_bn")},
    **{f"resnet{n}": f"resnet{n}" for n in (18, 34, 50, 101, 152)},
    **{f"densenet{n}": f"densenet{n}" for n in (121, 161, 169, 201)},
    **{f"convnext_{s}": f"convnext_{s}" for s in ("tiny", "small", "base", "large")},
    **{f"vit_{s}{p}": f"vit_{s}_{p}" for s in ("b", "l") for p in (16, 32)},
    "googlenet": "googlenet", "inception_v3": "inception_v3",
}
NO_AUX = {"googlenet", "inception_v3"}


def _torchvision(name: str, **kwargs):
    if name in NO_AUX:
        kwargs = {"aux_logits": False, "init_weights": True, **kwargs}
    return getattr(torchvision.models, name)(**kwargs)


@pytest.mark.parametrize("spec", CANONICAL)
def test_loads_torchvision_weights_and_matches_outputs(spec):
    builder, kwargs, size = CANONICAL[spec]
    torch.manual_seed(0)
    ref = getattr(torchvision.models, builder)(**kwargs).eval()
    randomise_batchnorm(ref)
    model = engine.build(spec).eval()
    engine.load_reference_state_dict(model, ref.state_dict(), spec, strict=True)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        got, want = model(x), ref(x)
    tolerance = 1e-5 * max(1.0, want.abs().max().item())
    assert (got - want).abs().max().item() <= tolerance


@pytest.mark.parametrize("spec", VARIANTS)
def test_parameter_count_equals_torchvision(spec):
    with torch.device("meta"):
        ref = _torchvision(VARIANTS[spec])
    want = sum(p.numel() for p in ref.parameters())
    shaped = engine.analyze(spec)
    seen: set[int] = set()
    got = sum(node_params(n, shaped, seen) for g in shaped.spec.networks.values() for n in g.nodes)
    assert got == want


@pytest.mark.parametrize("spec", ["resnet18", "densenet121", "vit_b16", "convnext_tiny"])
def test_state_dict_keys_and_shapes_equal_torchvision(spec):
    with torch.device("meta"):
        ref = _torchvision(VARIANTS[spec])
    model = engine.build(spec, device="meta")
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in ref.state_dict().items()}


BASES = {"alexnet", "vgg", "resnet50", "googlenet", "inception_v3", "densenet121",
         "convnext_tiny", "vit_b16", "squeezenet1_0"}


@pytest.mark.parametrize("spec", sorted(set(VARIANTS) - BASES))
def test_variants_extend_a_base(spec):
    from engine.compiler.load import load_file
    from engine.compiler.merge import SPECS_DIR
    doc = load_file(SPECS_DIR / f"{spec}.yaml")
    assert "extends" in doc, f"{spec} should be an `extends:` of its family's base"
