"""Swin Transformer (swin_t, swin_s, swin_b) and Swin V2 (swin_v2_t, swin_v2_s, swin_v2_b) against
torchvision, the oracle: same parameter counts, same state_dict keys and shapes (the
relative_position_index and relative_coords_table buffers included, with torchvision's values),
and MACs; for the two bases torchvision's weights load with strict=True and give its outputs, at
the canonical sizes and (narrow models) at sizes that need padding; plus summary and render."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformer, SwinTransformerBlockV2

import engine
from engine.compiler.build import build
from engine.views.render import render_dot
from engine.views.summary import format_summary, node_params, summarize

pytestmark = pytest.mark.usefixtures("one_thread")  # batch 1: one thread is fastest

VARIANTS = ["swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b"]
# Narrow models (width 32, 1-8 heads, two blocks a stage) at sizes whose maps are no whole windows:
# padded attention, odd patch merging, no shift where one window covers the map
# (80: maps 20/10/5/3; 72: maps 18/9/5/3; 40: maps 10/5/3/2)
NARROW = {"embed_dim": 32, "num_heads": [1, 2, 4, 8], "depths": [2, 2, 2, 2]}
PADDED = [("swin_t", 80), ("swin_v2_t", 72), ("swin_t", 40), ("swin_v2_t", 40)]


def _narrow_torchvision(spec: str) -> torch.nn.Module:
    """torchvision's swin_t or swin_v2_t, NARROW."""
    v2 = {"block": SwinTransformerBlockV2, "downsample_layer": PatchMergingV2} if "v2" in spec else {}
    window = 8 if "v2" in spec else 7
    return SwinTransformer(patch_size=[4, 4], window_size=[window, window], stochastic_depth_prob=0.2,
                           **NARROW, **v2)


@pytest.fixture(scope="module")
def references():
    """torchvision's models on the meta device, by name (no weights allocated)."""
    with torch.device("meta"):
        return {name: getattr(torchvision.models, name)() for name in VARIANTS}


@pytest.fixture(scope="module")
def shaped():
    return {name: engine.analyze(name) for name in VARIANTS}


@pytest.mark.parametrize("spec", VARIANTS)
def test_parameter_count_equals_torchvision(spec, references, shaped):
    want = sum(p.numel() for p in references[spec].parameters())
    seen: set[int] = set()
    got = sum(node_params(n, shaped[spec], seen)
              for g in shaped[spec].spec.networks.values() for n in g.nodes)
    assert got == want


@pytest.mark.parametrize("spec", VARIANTS)
def test_state_dict_keys_and_shapes_equal_torchvision(spec, references, shaped):
    model = build(shaped[spec], device="meta")
    got = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    want = {k: (tuple(v.shape), v.dtype) for k, v in references[spec].state_dict().items()}
    assert got == want  # keys, shapes and dtypes; the order differs where torchvision's
    # modules are made in another order than they run (PatchMerging's reduction before its norm)
    buffers = [k for k in got if k.endswith(("relative_position_index", "relative_coords_table"))]
    assert len(buffers) == sum(shaped[spec].spec.params["depths"]) * (2 if "v2" in spec else 1)
    assert "features.1.0.attn.relative_position_index" in buffers


@pytest.mark.parametrize("spec", ["swin_t", "swin_v2_t"])
def test_buffers_hold_torchvisions_values(spec):
    """The spec's helpers compute the relative position index (and V2's coordinate table)."""
    ref = _narrow_torchvision(spec).state_dict()
    model = engine.build(spec, **NARROW).state_dict()
    for key in ("features.1.0.attn.relative_position_index", "features.7.1.attn.relative_position_index"):
        assert torch.equal(model[key], ref[key])
    if spec == "swin_v2_t":
        key = "features.3.0.attn.relative_coords_table"
        torch.testing.assert_close(model[key], ref[key], rtol=0, atol=1e-6)


def _matches(spec: str, ref: torch.nn.Module, size: int, **params) -> None:
    """torchvision's state_dict loads with strict=True and gives torchvision's outputs."""
    ref.eval()
    with torch.no_grad():  # V2: a key bias the forward must ignore, as torchvision's does
        for name, p in ref.named_parameters():
            if name.endswith("attn.qkv.bias"):
                p.uniform_(-0.1, 0.1)
    model = engine.build(spec, image_size=size, **params).eval()
    engine.load_reference_state_dict(model, ref.state_dict(), spec, strict=True)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        got, want = model(x), ref(x)
    assert got.shape == want.shape == (1, 1000)
    tolerance = 1e-5 * max(1.0, want.abs().max().item())
    assert (got - want).abs().max().item() <= tolerance


@pytest.mark.parametrize("spec,size", [("swin_t", 224), ("swin_v2_t", 256)])
def test_loads_torchvision_weights_and_matches_outputs(spec, size):
    """At torchvision's weights' sizes: maps of 56/28/14/7 (windows of 7), 64/32/16/8 (of 8)."""
    _matches(spec, getattr(torchvision.models, spec)(), size)


@pytest.mark.parametrize("spec,size", PADDED, ids=[f"{s}-{n}" for s, n in PADDED])
def test_maps_that_are_no_whole_windows_match_torchvision(spec, size):
    _matches(spec, _narrow_torchvision(spec), size, **NARROW)


@pytest.mark.parametrize("spec", VARIANTS)
def test_macs_equal_torchvisions_published_ops(spec, shaped):
    """torchvision's GFLOPS (its weights' `_ops`, at their size) are these MACs, rounded."""
    ops = torchvision.models.get_model_weights(spec).DEFAULT.meta["_ops"]
    assert round(summarize(shaped[spec]).macs / 1e9, 3) == pytest.approx(ops, abs=1e-9)


@pytest.mark.parametrize("spec", ["swin_s", "swin_b", "swin_v2_s", "swin_v2_b"])
def test_variants_extend_the_base(spec):
    from engine.compiler.load import load_file
    from engine.compiler.merge import SPECS_DIR
    doc = load_file(SPECS_DIR / f"{spec}.yaml")
    assert doc["extends"] == ("swin_v2_t.yaml" if "v2" in spec else "swin_t.yaml")


@pytest.mark.parametrize("spec", ["swin_t", "swin_v2_t"])
def test_summary_and_render(spec, shaped):
    summary = summarize(shaped[spec])
    text = format_summary(summary)
    assert "features" in text and "head" in text
    assert summary.params == sum(p.numel() for p in build(shaped[spec], device="meta").parameters())
    dot = render_dot(shaped[spec], expand=["features.1.0.attn"])
    assert "relative_position_index: buffer" in dot
