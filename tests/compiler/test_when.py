"""`when:` on a node with several inputs: `otherwise:` says which input passes on when the node
is switched off, and leaving it out is a located error (no branch is dropped silently).

The MobileNet pattern of issue 23: "add only when in == out" written as
`add: {in: [input, conv], when: ...}` used to pass `input` on and lose the conv branch."""

from __future__ import annotations

import pytest
import torch

import engine
from engine.compiler import SpecError

SPEC = """
name: residual
params: {width: 4}
inputs: {image: [B, 4, 8, 8]}
blocks:
  inverted:
    params: {out: int}
    nodes:
      conv: {op: conv, out: $out, k: 1}
      add:  {op: add, in: [FIRST, SECOND], when: "WHEN", otherwise: conv}
graph:
  block: {op: inverted, out: $width}
"""


def spec(first: str, second: str, when: str) -> str:
    return SPEC.replace("FIRST", first).replace("SECOND", second).replace("WHEN", when)


@pytest.mark.parametrize("first, second, when", [
    ("input", "conv", "${input.channels == out}"),  # `input`: the node's first input's shape
    ("conv", "input", "${inputs[1].channels == out}"),  # `inputs[k]`: the k-th, either way round
    ("input", "conv", "${width == 4}"), ("conv", "input", "${width == 4}")])  # or a param
def test_otherwise_passes_the_named_input_either_way_round(tmp_path, first, second, when):
    path = tmp_path / "residual.yaml"
    path.write_text(spec(first, second, when))
    x = torch.randn(2, 4, 8, 8)
    same = engine.build(path).eval()  # width 4 == in: the residual add
    conv = same.block.conv
    torch.testing.assert_close(same(x), x + conv(x))
    wider = engine.build(path, width=8).eval()  # the add is off: the conv's output passes on
    assert sum(p.numel() for p in wider.parameters()) == 4 * 8 + 8
    torch.testing.assert_close(wider(x), wider.block.conv(x))


def test_otherwise_must_name_one_of_the_inputs(tmp_path):
    path = tmp_path / "residual.yaml"
    path.write_text(spec("input", "conv", "${width == 4}").replace("otherwise: conv", "otherwise: bn"))
    with pytest.raises(SpecError, match=r"`otherwise: bn` is not one of the node's inputs"):
        engine.analyze(path)


FIRST_OP = """
name: first_op
inputs: {x: [B, 4, 8, 8]}
blocks:
  a: {params: {out: int}, nodes: {conv: {op: conv, out: $out, k: 3, stride: 2, pad: 1}}}
  b: {params: {out: int}, nodes: {conv: {op: conv, out: $out, k: 1}}}
graph:
  stage: {op: b, repeat: 3, args: {out: 4}, first: {op: a}, last: {out: 6}}
"""


def test_first_may_make_a_repetition_another_block(tmp_path):
    """`first: {op: a}`: the first child is block a, the others block b (ShuffleNet's stages)."""
    path = tmp_path / "first_op.yaml"
    path.write_text(FIRST_OP)
    model = engine.build(path)
    shapes = [tuple(getattr(model.stage, str(i)).conv.weight.shape) for i in range(3)]
    assert shapes == [(4, 4, 3, 3), (4, 4, 1, 1), (6, 4, 1, 1)]
    assert model(torch.randn(1, 4, 8, 8)).shape == (1, 6, 4, 4)
