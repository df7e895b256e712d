"""The `spectral_norm: true` node key (Miyato et al., 2018): torch's parametrization on the node's
weight, applied after initialisation, kept by codegen, refused where there is no weight matrix."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

import engine
from engine.cli import main
from engine.compiler.ir import SpecError

SPEC = """\
name: sn_demo
networks:
  critic:
    inputs: {image: [B, 1, 8, 8]}
    graph:
      conv:    {op: conv, out: 4, k: 3, stride: 2, pad: 1, spectral_norm: true}
      act:     {op: leaky_relu, slope: 0.1}
      up:      {op: conv_transpose, out: 2, k: 4, stride: 2, pad: 1, spectral_norm: true}
      flatten: flatten
      head:    {op: linear, out: 1, spectral_norm: true}
"""


class Reference(nn.Module):
    def __init__(self):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.conv = sn(nn.Conv2d(1, 4, 3, 2, 1))
        self.act = nn.LeakyReLU(0.1)
        self.up = sn(nn.ConvTranspose2d(4, 2, 4, 2, 1))
        self.head = sn(nn.Linear(2 * 8 * 8, 1))

    def forward(self, image):
        return self.head(self.up(self.act(self.conv(image))).flatten(1))


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "sn.yaml"
    path.write_text(SPEC)
    return path


def top_singular_value(weight: torch.Tensor, transposed: bool = False) -> float:
    matrix = (weight.transpose(0, 1) if transposed else weight).flatten(1)
    return float(torch.linalg.matrix_norm(matrix.detach(), 2))


def test_state_dict_and_outputs_are_torch_spectral_norms(spec):
    net = engine.build(spec)["critic"]
    ref = Reference()
    ref.load_state_dict(net.state_dict(), strict=True)
    x = torch.randn(3, 1, 8, 8)
    net.eval(), ref.eval()
    torch.testing.assert_close(net(x), ref(x), rtol=0, atol=0)
    assert "conv.parametrizations.weight.original" in net.state_dict()


def test_every_wrapped_weight_has_spectral_norm_one_and_stays_so_in_training(spec):
    """The constraint is real: the weight the layer uses has largest singular value 1 (the
    power iteration runs once per training forward), though the raw weight is far from it."""
    net = engine.build(spec)["critic"]
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(20):
        loss = -net(torch.randn(8, 1, 8, 8)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for _ in range(10):  # a few more power iterations for the last update
        net(torch.randn(8, 1, 8, 8))
    net.eval()
    for name, transposed in (("conv", False), ("up", True), ("head", False)):
        layer = getattr(net, name)
        raw = layer.parametrizations.weight.original
        assert top_singular_value(layer.weight, transposed) == pytest.approx(1.0, abs=2e-3)
        assert abs(top_singular_value(raw, transposed) - 1.0) > 0.05


def test_gradient_reaches_the_raw_weight(spec):
    net = engine.build(spec)["critic"]
    net(torch.randn(2, 1, 8, 8)).sum().backward()
    for name in ("conv", "up", "head"):
        grad = getattr(net, name).parametrizations.weight.original.grad
        assert grad is not None and grad.abs().sum() > 0


def test_codegen_writes_the_wrapper_and_loads_the_state_dict(spec, tmp_path):
    model = engine.build(spec)
    out = tmp_path / "gen.py"
    assert main(["codegen", str(spec), "-o", str(out)]) == 0
    namespace: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    generated = namespace["Critic"]()
    generated.load_state_dict(model["critic"].state_dict(), strict=True)
    x = torch.randn(2, 1, 8, 8)
    model.eval(), generated.eval()
    torch.testing.assert_close(generated(x), model["critic"](x), rtol=0, atol=0)


def test_spectral_norm_on_a_layer_without_weight_is_a_located_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent("""\
        name: bad
        inputs: {x: [B, 4]}
        graph:
          fc:  {op: linear, out: 4}
          act: {op: relu, spectral_norm: true}
        """))
    with pytest.raises(SpecError) as err:
        engine.build(path)
    text = str(err.value)
    assert "spectral_norm" in text and "relu" in text and ":5" in text
