"""Shape rules (blocks/shape_rules.py) against their oracle, PyTorch on the meta device.

Every node a rule answers is also run the old way, on meta tensors with PyTorch's FLOP
counter, and the two must agree on each output's shape, layout, dtype and on the MACs. The
bundled specs are the corpus (a family's larger members aside: conftest.FAMILY_SPECS): between
them they use every rule with the arguments real architectures write (padded, strided, dilated,
grouped and `same` convs, ceil-mode pools, broadcast adds, class-token concats, permutes to
channels-last).
"""

from __future__ import annotations

import pytest
import torch

import engine
import engine.compiler.shapes as shapes
from engine.blocks.registry import lookup
from engine.blocks.shape_rules import broadcast

from ..conftest import FAMILY_SPECS


@pytest.fixture(scope="module")
def checked() -> dict:
    """op -> number of distinct (args, shapes) a rule answered, over every bundled spec; fails
    at the first node where the rule and PyTorch disagree."""
    counts: dict[str, int] = {}
    original = shapes.by_rule

    def both(info, args, inputs):
        ruled = original(info, args, inputs)
        if ruled is not None:
            layer = shapes._construct(info.cls, {**args, **shapes.inferred_args(
                info, [i.shape for i in inputs])})
            run = shapes._ShapeRun.__new__(shapes._ShapeRun)
            run.errors = []
            meta = run.run_meta(None, layer, inputs, info)
            assert meta == ruled, f"{info.name} {args} on {[i.shape for i in inputs]}: " \
                                  f"rule {ruled}, PyTorch {meta}"
            counts[info.name] = counts.get(info.name, 0) + 1
        return ruled

    shapes.by_rule = both
    try:
        for spec in FAMILY_SPECS:
            engine.analyze(spec)
    finally:
        shapes.by_rule = original
    return counts


def test_every_rule_agrees_with_pytorch_on_every_bundled_spec(checked):
    ruled = {"conv", "linear", "concat", "add", "mul", "flatten", "permute", "maxpool", "avgpool",
             "adaptive_avgpool"}
    assert all(hasattr(lookup(op).cls, "shape_rule") for op in ruled)
    # each rule met real cases (adaptive_maxpool, in no bundled spec, is in CASES below)
    assert ruled <= set(checked), sorted(ruled - set(checked))
    assert sum(checked.values()) > 1000


def _torch_or_none(op: str, args: dict, shape: tuple):
    """What PyTorch says on meta: (shapes, MACs), or None where it refuses."""
    info = lookup(op)
    try:
        layer = shapes._construct(info.cls, args)
        out = layer(torch.empty(shape, device="meta"))
    except Exception:  # noqa: BLE001
        return None
    return [tuple(out.shape)]


CASES = [
    ("conv", {"out": 8, "k": 3, "pad": 1}, (1, 4, 2, 2)),         # kernel over the padded input
    ("conv", {"out": 8, "k": 5}, (1, 4, 3, 3)),                   # kernel larger than the input
    ("conv", {"out": 8, "k": 3, "pad": "same"}, (1, 4, 2, 2)),
    ("conv", {"out": 8, "k": [1, 7], "pad": [0, 3], "stride": [2, 1]}, (2, 4, 9, 9)),
    ("conv", {"out": 8, "k": 3, "dilation": 2, "pad": 2, "groups": 4}, (1, 4, 9, 9)),
    ("conv", {"out": 8, "k": 3}, (4, 9, 9)),                      # unbatched: PyTorch's to judge
    ("maxpool", {"k": 3, "stride": 2, "ceil": True}, (1, 2, 7, 7)),
    ("maxpool", {"k": 2, "stride": 2, "pad": 1, "ceil": True}, (1, 2, 5, 5)),
    ("maxpool", {"k": 3, "stride": 2, "pad": 1, "dilation": 2}, (1, 2, 9, 8)),
    ("maxpool", {"k": 2, "pad": 2}, (1, 2, 8, 8)),                # pad over half the window
    ("avgpool", {"k": 3, "stride": 1, "pad": 1, "ceil": True}, (1, 2, 1, 1)),
    ("avgpool", {"k": 4}, (1, 2, 3, 3)),                          # window larger than the input
    ("adaptive_avgpool", {"size": [2, 3]}, (1, 2, 7, 7)),
    ("adaptive_maxpool", {"size": 3}, (1, 2, 7, 5)),
    ("flatten", {"start": 0, "end": 2}, (2, 3, 4, 5)),
    ("flatten", {"start": 2, "end": 1}, (2, 3, 4, 5)),
    ("permute", {"dims": [0, -1, 1, 2]}, (2, 3, 4, 5)),
    ("permute", {"dims": [0, 1, 1, 2]}, (2, 3, 4, 5)),
    ("linear", {"out": 6}, (2, 3, 4, 5)),
]


@pytest.mark.parametrize("op, args, shape", CASES)
def test_a_rule_gives_pytorchs_shape_or_declines(op, args, shape):
    info = lookup(op)
    full = {**args, **shapes.inferred_args(info, [shape])}
    ruled = info.cls.shape_rule(full, [shape])
    theirs = _torch_or_none(op, full, shape)
    if theirs is None:
        assert ruled is None  # PyTorch refuses: the rule leaves it to PyTorch to say why
    else:
        assert ruled is None or ruled[0] == theirs


def test_a_mismatch_is_still_reported_by_pytorch_against_the_node(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\ninputs: {x: [1, 3, 8, 8]}\ngraph:\n"
                    "  a: {op: conv, out: 4, k: 3, pad: 1, in: x}\n"
                    "  b: {op: conv, out: 5, k: 3, pad: 1, in: x}\n"
                    "  c: {op: add, in: [a, b]}\n")
    with pytest.raises(engine.SpecError) as err:
        engine.analyze(spec)
    assert "shape mismatch in 'add'" in str(err.value) and "[1, 4, 8, 8]" in str(err.value)


def test_broadcast_is_numpys():
    assert broadcast([(1, 5, 3), (4, 1, 3)]) == (4, 5, 3)
    assert broadcast([(3,), (2, 1)]) == (2, 3)
    assert broadcast([(2, 3), (3, 3)]) is None
    assert broadcast([(0, 3), (1, 3)]) == (0, 3)
