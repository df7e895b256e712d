"""`engine export`: torch.export and ONNX files that compute what the engine's model computes."""

from __future__ import annotations

import sys

import pytest
import torch

import engine
from engine.cli import main
from engine.compiler.ir import SpecError
from engine.views.export import export_spec

# A small ViT-like classifier: patchify, tokens, a class token, attention, layer norm, a head.
TINY = """
    name: tiny
    params: {dim: 8}
    inputs: {image: [B, 3, 16, 16]}
    graph:
      stem: {op: conv, out: $dim, k: 4, stride: 4}
      bn: batchnorm
      act: gelu
      flat: {op: flatten, start: 2}
      tokens: {op: permute, dims: [0, 2, 1]}
      cls_token: {op: parameter, shape: "${[1, 1, dim]}", init: {normal: {std: 0.02}}}
      cat: {op: concat, in: [cls_token, tokens], dim: 1, broadcast_batch: true}
      attn: {op: attention, heads: 2}
      res: {op: add, in: [attn, cat]}
      norm: layernorm
      first: {op: select, index: 0}
      head: {op: linear, out: 5}
    outputs: {logits: head, tokens: norm}
"""
GAN = """
    name: gan
    networks:
      generator:
        inputs: {z: [B, 4]}
        graph: {fc: {op: linear, out: 6}}
      discriminator:
        inputs: {x: [B, 6]}
        graph: {fc: {op: linear, out: 1}}
"""


def _reference(spec, seed: int, **params) -> tuple[torch.nn.Module, torch.Tensor]:
    """The engine's model with the weights an export made under the same seed, and an input."""
    torch.manual_seed(seed)
    model = engine.build(spec, **params).eval()
    shape = next(iter(engine.analyze(spec).inputs.values()))["image"].shape
    return model, torch.randn(shape)


def _flat(out) -> list[torch.Tensor]:
    if isinstance(out, dict):
        return list(out.values())
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _close(got: list, want: list, rtol: float = 0.0) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        a = torch.as_tensor(a)
        scale = max(1.0, b.abs().max().item())
        assert (a - b).abs().max().item() <= max(1e-6, rtol) * scale


@pytest.mark.parametrize("which", ["tiny", "resnet18"])
def test_torch_export_round_trip(which, spec_file, tmp_path):
    spec = spec_file(TINY) if which == "tiny" else which
    torch.manual_seed(3)
    path = export_spec(spec, None, "torch-export", tmp_path / f"{which}.pt2")
    program = torch.export.load(str(path))
    model, x = _reference(spec, 3)
    for key, value in model.state_dict().items():  # the same weights went into the file
        if key in program.state_dict:
            assert torch.equal(program.state_dict[key], value), key
    with torch.no_grad():
        _close(_flat(program.module()(x)), _flat(model(x)))


@pytest.mark.parametrize("which", ["tiny", "resnet18"])
def test_onnx_export_computes_the_same(which, spec_file, tmp_path):
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    spec = spec_file(TINY) if which == "tiny" else which
    torch.manual_seed(5)
    path = export_spec(spec, None, "onnx", tmp_path / f"{which}.onnx")
    onnx.checker.check_model(str(path))
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["image"]
    expected_outputs = ["logits", "tokens"] if which == "tiny" else ["logits"]
    assert [o.name for o in graph.output] == expected_outputs
    try:
        import onnxruntime
    except ImportError:  # onnx.checker above is the check then
        return
    model, x = _reference(spec, 5)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        _close(got, _flat(model(x)), rtol=1e-4)


def test_overrides_reach_the_export(tmp_path):
    torch.manual_seed(0)
    path = export_spec("resnet18", ["num_classes=7", "dims.B=2"], "torch-export",
                       tmp_path / "r.pt2")
    program = torch.export.load(str(path))
    assert program.module()(torch.randn(2, 3, 224, 224)).shape == (2, 7)


def test_one_network_of_several(spec_file, tmp_path):
    spec = spec_file(GAN)
    with pytest.raises(SpecError, match=r"2 networks \(generator, discriminator\)"):
        export_spec(spec, None, "torch-export", tmp_path / "gan.pt2")
    with pytest.raises(SpecError, match="no network 'critic'"):
        export_spec(spec, None, "torch-export", tmp_path / "gan.pt2", network="critic")
    path = export_spec(spec, None, "torch-export", tmp_path / "g.pt2", network="discriminator")
    assert torch.export.load(str(path)).module()(torch.randn(1, 6)).shape == (1, 1)


def test_missing_onnx_is_a_one_line_error(spec_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` fails
    with pytest.raises(SpecError) as err:
        export_spec(spec_file(TINY), None, "onnx", tmp_path / "t.onnx")
    message = str(err.value)
    assert "ONNX export needs the onnx package" in message and "pip install onnx" in message
    assert "\n" not in message


def test_unknown_format(spec_file, tmp_path):
    with pytest.raises(SpecError, match="unknown export format 'tflite'"):
        export_spec(spec_file(TINY), None, "tflite", tmp_path / "t.tflite")


def test_cli_export_and_its_errors(spec_file, tmp_path, capsys):
    out = tmp_path / "tiny.pt2"
    assert main(["export", str(spec_file(TINY)), "--format", "torch-export", "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out and out.exists()
    gan = spec_file(GAN, "gan.yaml")
    assert main(["export", str(gan), "--format", "onnx", "-o", str(tmp_path / "g.onnx")]) == 1
    err = capsys.readouterr().err
    assert "has 2 networks" in err and "Traceback" not in err
