"""`engine codegen` and `engine export` on a spec whose param switches outputs on (issue 26):
googlenet with `aux_logits: true` returns {logits, aux1, aux2}, and so do the generated module,
the torch.export program and the ONNX graph, with the same values."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import engine
import engine.views.codegen as codegen
from engine.compiler.build import build
from engine.views.export import export_spec

SET = ["aux_logits=true", "num_classes=10", "image_size=64"]
OUTPUTS = ["logits", "aux1", "aux2"]


def _engine_model(seed: int):
    torch.manual_seed(seed)
    model = build(engine.analyze("googlenet", SET)).eval()
    return model, torch.randn(1, 3, 64, 64)


def _close(got: dict, want: dict, rtol: float = 1e-6) -> None:
    assert list(got) == list(want) == OUTPUTS
    for name in OUTPUTS:
        scale = max(1.0, want[name].abs().max().item())
        assert (torch.as_tensor(got[name]) - want[name]).abs().max().item() <= rtol * scale, name


def test_codegen_returns_every_output(tmp_path):
    path = codegen.write_codegen(engine.analyze("googlenet", SET), tmp_path / "googlenet_aux.py")
    text = path.read_text()
    assert "self.aux1 = " in text and "self.aux2 = " in text
    assert "return {'logits': fc, 'aux1': aux1, 'aux2': aux2}" in text
    spec = importlib.util.spec_from_file_location("googlenet_aux_generated", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, x = _engine_model(0)
    generated = module.build().eval()
    generated.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        _close(generated(x), model(x))


def test_codegen_without_aux_logits_has_no_aux_heads():
    text = codegen.codegen_source(engine.analyze("googlenet", ["image_size=64"]), "m.py")
    assert "self.aux1" not in text and "self.aux2" not in text
    assert "return fc" in text


def test_torch_export_returns_every_output(tmp_path):
    torch.manual_seed(3)
    path = export_spec("googlenet", SET, "torch-export", tmp_path / "googlenet_aux.pt2")
    program = torch.export.load(str(path))
    model, x = _engine_model(3)
    with torch.no_grad():
        _close(program.module()(x), model(x))


def test_onnx_export_names_every_output(tmp_path):
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    torch.manual_seed(5)
    path = export_spec("googlenet", SET, "onnx", tmp_path / "googlenet_aux.onnx")
    assert [o.name for o in onnx.load(str(path)).graph.output] == OUTPUTS
    onnxruntime = pytest.importorskip("onnxruntime")
    model, x = _engine_model(5)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip(OUTPUTS, session.run(None, {"image": x.numpy()})))
    with torch.no_grad():
        _close(got, model(x), rtol=1e-4)
