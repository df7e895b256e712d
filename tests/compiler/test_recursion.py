"""Recursion: `repeat: N` with `share: true` applies one module N times (DRCN, DRRN), every
application an output; `map: true` applies it to each output of an earlier recursion (`in: rec.*`).
Checked against the same nn.Module applied by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.compiler.ir import SpecError

UNIT = """
        inputs: {x: [B, 4, 6, 6]}
        blocks:
          unit:
            inputs: [h, skip]
            nodes:
              act: {op: relu, in: h}
              conv: {op: conv, out: 4, k: 3, pad: 1}
              sum: {op: add, in: [conv, skip]}
        graph:
          first: {op: conv, out: 4, k: 3, pad: 1}
          rec: {repeat: 25, share: true, op: unit, in: [first, first]}
          recon: {repeat: 25, share: true, map: true, op: conv, out: 2, k: 1, in: rec.*}
          ws: {op: weighted_sum, count: 25, in: recon.*}
        outputs: {out: ws, last: rec, third: rec.2}
"""


def _by_hand(m, x):
    first = m.first(x)
    unit = getattr(m.rec, "0").conv
    hs, h = [], first
    for _ in range(25):
        h = F.conv2d(F.relu(h), unit.weight, unit.bias, padding=1) + first
        hs.append(h)
    recon = getattr(m.recon, "0")
    ys = [recon(h) for h in hs]
    return hs, sum(w * y for w, y in zip(m.ws.weight, ys))


def test_a_recursion_has_the_parameters_of_one_application(build_text):
    m = build_text(UNIT)
    n = sum(p.numel() for p in m.parameters())
    assert n == (4 * 4 * 9 + 4) * 2 + (4 * 2 + 2) + 25  # first + unit conv, recon, 25 weights
    assert [k for k in m.state_dict() if k.startswith("rec.")] == ["rec.0.conv.weight", "rec.0.conv.bias"]


def test_every_application_and_the_output_equal_the_hand_computed_ones(build_text):
    m = build_text(UNIT)
    x = torch.randn(2, 4, 6, 6)
    hs, want = _by_hand(m, x)
    out = m(x)
    torch.testing.assert_close(out["out"], want)
    torch.testing.assert_close(out["last"], hs[-1])
    torch.testing.assert_close(out["third"], hs[2])


def test_the_shared_weight_gets_the_sum_of_every_applications_gradient(build_text):
    m = build_text(UNIT)
    weight = getattr(m.rec, "0").conv.weight
    x = torch.randn(2, 4, 6, 6)
    m(x)["last"].square().sum().backward()
    got = weight.grad.clone()
    # reference: 25 copies of the weight, one per application; their gradients sum to ours
    copies = [weight.detach().clone().requires_grad_() for _ in range(25)]
    first = m.first(x).detach()
    h = first
    for w in copies:
        h = F.conv2d(F.relu(h), w, getattr(m.rec, "0").conv.bias, padding=1) + first
    h.square().sum().backward()
    assert all(c.grad.abs().sum() > 0 for c in copies)  # every recursion contributes
    torch.testing.assert_close(got, sum(c.grad for c in copies))


def test_a_recursive_primitive_chains_one_module(build_text):
    m = build_text("""
        inputs: {x: [B, 3]}
        graph:
          rec: {repeat: 4, share: true, op: linear, out: 3}
        outputs: {out: rec, first: rec.0}
    """)
    lin = getattr(m.rec, "0")
    assert sum(p.numel() for p in m.parameters()) == 12
    x = torch.randn(2, 3)
    out = m(x)
    torch.testing.assert_close(out["out"], lin(lin(lin(lin(x)))))
    torch.testing.assert_close(out["first"], lin(x))


@pytest.mark.parametrize("node, message", [
    ("{repeat: 3, share: conv, op: linear, out: 3}", "on a repeat, `share:` is true or false"),
    ("{repeat: 3, share: true, op: linear, out: 3, first: {out: 2}}", "takes no first:/last:"),
    ("{repeat: 3, map: true, op: linear, out: 3}", "`map: true` needs `share: true`"),
    ("{repeat: 3, share: true, map: true, op: linear, out: 3}", "3 inputs needed, got 1"),
    ("{op: add, in: x.*}", "needs 'x' to be an earlier recursion"),
])
def test_recursion_mistakes_are_located(build_text, node, message):
    with pytest.raises(SpecError) as err:
        build_text(f"""
            inputs: {{x: [B, 3]}}
            graph:
              bad: {node}
        """)
    assert message in str(err.value)
    assert "spec.yaml:3:" in str(err.value)  # the line of the node
