"""Every view works on every family base of torchvision's zoo added as specs: summary, diagram,
diff against a variant, and an ONNX file that computes what the engine's model computes.
(Codegen round trips of every bundled spec: tests/views/test_codegen.py.)"""

from __future__ import annotations

import pytest
import torch

import engine
from engine.views.diff import diff_specs, format_diff
from engine.views.export import export_spec
from engine.views.render import render_dot
from engine.views.summary import format_summary, summarize

# family base -> (a variant to diff it with, a small input side for the ONNX check)
BASES = {
    "mobilenet_v2": ("mobilenet_v3_large", 32),
    "mobilenet_v3_large": ("mobilenet_v3_small", 32),
    "mnasnet1_0": ("mnasnet0_5", 32),
    "shufflenet_v2_x1_0": ("shufflenet_v2_x0_5", 32),
    "efficientnet_b0": ("efficientnet_b1", 32),
    "regnet_y_400mf": ("regnet_x_400mf", 32),
    "resnext50_32x4d": ("resnet50", 32),
    "fcn_resnet50": ("deeplabv3_resnet50", 32),
    "deeplabv3_mobilenet_v3_large": ("lraspp_mobilenet_v3_large", 32),
    "swin_t": ("swin_v2_t", 224),
}


@pytest.mark.parametrize("base", BASES)
def test_summary_render_and_diff(base):
    shaped, other = engine.analyze(base), engine.analyze(BASES[base][0])
    summary = summarize(shaped)
    assert summary.params > 0 and summary.macs > 0 and f"{summary.params:,}" in format_summary(summary)
    dot = render_dot(shaped)
    assert dot.startswith("digraph") and dot.count("->") > 5
    result = diff_specs(shaped, other)
    text = format_diff(result)
    assert "totals" in text and f"{summary.params:,}" in text


@pytest.mark.parametrize("base", [b for b in BASES if BASES[b][1] <= 64])
def test_onnx_export_computes_the_same(base, tmp_path):
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    side = BASES[base][1]
    torch.manual_seed(0)
    path = export_spec(base, {"image_size": side}, "onnx", tmp_path / f"{base}.onnx")
    onnx.checker.check_model(str(path))
    torch.manual_seed(0)
    model = engine.build(base, image_size=side).eval()
    x = torch.randn(1, 3, side, side)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = model(x)
    want = list(want.values()) if isinstance(want, dict) else [want]
    for g, w in zip(got, want):
        scale = max(1.0, w.abs().max().item())
        torch.testing.assert_close(torch.from_numpy(g), w, rtol=1e-3, atol=1e-4 * scale)
