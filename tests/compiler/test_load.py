"""Stage 1: YAML is read safely and every key and value keeps its line and column."""

from __future__ import annotations

import pytest

from engine.compiler.ir import LocDict, SpecError
from engine.compiler.load import DELETE, load_text


def test_locations_of_keys_values_and_items():
    doc = load_text("name: x\ngraph:\n  conv: {op: conv, out: 4}\n  seq: [a, b]\n", "f.yaml")
    assert isinstance(doc, LocDict)
    assert (doc.key_loc("graph").line, doc.key_loc("graph").col) == (2, 1)
    conv = doc["graph"]["conv"]
    assert (conv.value_loc("out").line, conv.value_loc("out").col) == (3, 25)
    assert doc["graph"]["seq"].item_loc(1).col == 12
    assert str(doc.key_loc("name")) == "f.yaml:1:1"


def test_syntax_error_has_position_and_hint():
    with pytest.raises(SpecError) as caught:
        load_text("graph:\n  conv: {op: conv, out: 4\n  relu: relu\n", "f.yaml")
    d = caught.value.diagnostics[0]
    assert d.loc.file == "f.yaml" and d.loc.line >= 2 and "invalid YAML" in d.message


def test_duplicate_keys_are_errors_not_silently_dropped():
    with pytest.raises(SpecError, match="duplicate key 'conv'"):
        load_text("graph:\n  conv: {op: relu}\n  conv: {op: relu}\n", "f.yaml")


def test_tags_for_inheritance():
    doc = load_text("graph:\n  fc: !delete\n  head: !replace {op: linear, out: 3}\n", "f.yaml")
    assert doc["graph"]["fc"] is DELETE
    assert doc["graph"]["head"].replace is True


def test_arbitrary_python_tags_are_refused():
    with pytest.raises(SpecError, match="invalid YAML"):
        load_text("x: !!python/object/apply:os.system ['echo hacked']\n", "f.yaml")
