"""The `${...}` evaluator: what it computes, and everything it refuses."""

from __future__ import annotations

import pytest

from engine.compiler.expr import ExprError, NeedsShape, evaluate, evaluate_value
from engine.compiler.ir import TensorInfo

SCOPE = {"width": 64, "depths": [3, 4, 6, 3], "big": True, "name": "x"}


@pytest.mark.parametrize("source, value", [
    ("width * 4", 256), ("width // 3", 21), ("width / 4", 16.0), ("width % 5", 4),
    ("2 ** 10", 1024), ("-width", -64), ("depths[2]", 6), ("depths[1:3]", [4, 6]),
    ("depths[-1]", 3), ("width if big else 0", 64), ("width > 32 and not big", False),
    ("1 < 2 < 3", True), ("3 in depths", True), ("sum(depths)", 16), ("max(depths)", 6),
    ("len(depths)", 4), ("[width, width * 2]", [64, 128]), ("round(2.6)", 3),
    ("name == 'x'", True),
])
def test_evaluates(source, value):
    assert evaluate(source, SCOPE) == value


@pytest.mark.parametrize("source, message", [
    ("__import__('os')", "call to '__import__' is not allowed"),
    ("open('/etc/passwd')", "call to 'open' is not allowed"),
    ("width.__class__", "attribute access"),
    ("(lambda: 1)()", "not allowed"),
    ("{x for x in depths}", "not allowed"),  # set comprehensions (lists are allowed, bounded)
    ("widht", "did you mean 'width'"),
    ("width *", "cannot parse"),
    ("width / 0", "division by zero"),
    ("2 ** 1000", "too large"),
    ("depths[9]", "cannot index"),
    ("max(x=1)", "not allowed"),
])
def test_refuses(source, message):
    with pytest.raises(ExprError) as caught:
        evaluate(source, SCOPE)
    assert message in f"{caught.value} ({caught.value.hint})"


def test_shape_access_only_on_upstream_tensors():
    info = TensorInfo((2, 16, 8, 8))
    assert evaluate("input.channels // 2", {"input": info}) == 8
    assert evaluate("input.shape[-1]", {"input": info}) == 8
    assert evaluate("input.rank", {"input": info}) == 4
    with pytest.raises(ExprError, match="attribute access"):
        evaluate("input.dtype", {"input": info})
    with pytest.raises(NeedsShape):
        evaluate("input.channels", {"input": NeedsShape})


def test_value_forms():
    assert evaluate_value("$width", SCOPE) == 64
    assert evaluate_value("${width * 2}", SCOPE) == 128
    assert evaluate_value("layer_${width}", SCOPE) == "layer_64"
    assert evaluate_value("${depths[0]}-${depths[1]}", SCOPE) == "3-4"
