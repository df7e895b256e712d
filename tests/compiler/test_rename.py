"""`rename:` (engine/compiler/statedict.py): plain prefixes as always, `{i}` placeholders and
`re:` regular expressions, tried in order (first match wins); a rule that cannot work is a
located error of validation."""

from __future__ import annotations

import pytest
import torch
import torchvision

import engine
from engine.compiler import SpecError, analyze
from engine.compiler.statedict import compile_rename, rename_key, rename_problem


def renamed(keys: list[str], rename: dict[str, str]) -> list[str]:
    return list(engine.rename_state_dict(dict.fromkeys(keys, 0), rename))


# ---- plain prefixes, as before ------------------------------------------------------------------

def test_a_plain_prefix_renames_the_key_it_equals_or_that_goes_on_after_a_dot():
    rename = {"encoder.fc": "body.0"}
    assert renamed(["encoder.fc.weight", "encoder.fc", "encoder.fc2.weight", "other"], rename) == \
        ["body.0.weight", "body.0", "encoder.fc2.weight", "other"]


def test_the_longest_plain_prefix_wins_whatever_the_order():
    for rename in ({"a": "x", "a.b": "y"}, {"a.b": "y", "a": "x"}):
        assert renamed(["a.b.c", "a.c", "a.bc"], rename) == ["y.c", "x.c", "x.bc"]


# ---- placeholders ---------------------------------------------------------------------------------

def test_a_placeholder_matches_digits_and_is_written_back():
    rename = {"features.{i}.conv": "stage{i}.conv"}
    assert renamed(["features.3.conv.weight", "features.12.conv", "features.3.conv2.weight",
                    "features.x.conv.weight", "features.03.conv.bias"], rename) == \
        ["stage3.conv.weight", "stage12.conv", "features.3.conv2.weight",
         "features.x.conv.weight", "stage03.conv.bias"]


def test_placeholders_inside_a_segment_several_and_shifted():
    rename = {"features.denseblock{b}.denselayer{l}": "blocks.{b-1}.layers.{l - 1}",
              "up{k}": "decoder.{k+10}"}
    assert renamed(["features.denseblock1.denselayer2.norm1.weight", "up0.conv.weight"],
                   rename) == ["blocks.0.layers.1.norm1.weight", "decoder.10.conv.weight"]


def test_a_placeholder_used_twice_on_the_left_matches_the_same_digits():
    rename = {"a.{i}.b.{i}": "c{i}"}
    assert renamed(["a.4.b.4.w", "a.4.b.5.w"], rename) == ["c4.w", "a.4.b.5.w"]


def test_a_shift_below_zero_is_an_error_naming_the_rule():
    with pytest.raises(ValueError, match=r"\{i-1\} is -1"):
        renamed(["layer0.w"], {"layer{i}": "stage{i-1}"})


# ---- regular expressions ----------------------------------------------------------------------------

def test_a_regex_rule_replaces_its_first_match():
    rename = {r"re:^features\.(\d+)\.": r"stage\1.", r"re:\.(?P<p>weight|bias)$": r".lin_\g<p>"}
    assert renamed(["features.5.conv.weight", "head.weight", "features.x.y"], rename) == \
        ["stage5.conv.weight", "head.lin_weight", "features.x.y"]


# ---- order ------------------------------------------------------------------------------------------

def test_rules_are_tried_in_order_and_the_first_match_wins_once():
    keys = ["features.1.conv.weight"]
    assert renamed(keys, {"features.{i}": "f{i}", r"re:^features\.1": "g"}) == ["f1.conv.weight"]
    assert renamed(keys, {r"re:^features\.1": "g", "features.{i}": "f{i}"}) == ["g.conv.weight"]
    # the result is not renamed again by a later rule
    assert renamed(keys, {"features": "a", "a.{i}": "b{i}"}) == ["a.1.conv.weight"]
    rules = compile_rename({"x.{i}": "y{i}", "z": "w"})
    assert [r.kind for r in rules] == ["pattern", "prefix"]
    assert rename_key("z.1", rules) == "w.1"


# ---- bad rules ------------------------------------------------------------------------------------

@pytest.mark.parametrize("left, right, says", [
    ("features.{i}", "stage{j}", "placeholder '{j}' on the right is not on the left (the left has {i})"),
    ("features", "stage{i}", "placeholder '{i}' on the right is not on the left (the left has none)"),
    ("features.{1}", "stage", "placeholder '{1}' must be a name"),
    ("features.{i", "stage", "unmatched brace"),
    ("features.{i}", "stage{i*2}", "must be a name, or a name plus or minus a number"),
    ("re:features.(", "stage", "bad regular expression"),
    (r"re:features\.(\d+)", r"stage\2", "bad replacement"),
])
def test_a_rule_that_cannot_work_is_refused(left, right, says):
    problem = rename_problem(left, right)
    assert problem is not None and says in problem[0]
    with pytest.raises(ValueError, match="rename rule"):
        engine.rename_state_dict({"features.1.w": 0}, {left: right})


def test_a_bad_rule_is_a_located_error_at_its_entry(spec_file):
    path = spec_file("""
        name: bad_rename
        inputs: {x: [B, 4]}
        rename:
          "encoder.{i}.fc": "body.{i}"
          "decoder.{i}.fc": "body.{j}"
        graph:
          body: {seq: [{op: linear, out: 3}]}
    """)
    with pytest.raises(SpecError) as err:
        analyze(path)
    text = str(err.value)
    assert "spec.yaml:5:" in text and "placeholder '{j}' on the right is not on the left" in text
    assert "spec.yaml:4:" not in text


# ---- a round trip: torchvision resnet18 under other names, renamed back by three rules ---------------

def test_torchvision_resnet18_under_other_names_loads_strictly_and_computes_the_same(spec_file):
    torch.manual_seed(0)
    ref = torchvision.models.resnet18().eval()
    for m in ref.modules():  # fresh statistics (0/1) would hide a mismatch in eval mode
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    # the reference's keys as another implementation might write them
    theirs = engine.rename_state_dict(ref.state_dict(), {
        "layer{s}.{b}": "stages.{s-1}.blocks.{b}", r"re:^(conv|bn)1\.": r"stem.\1.", "fc": "head"})
    assert "stages.0.blocks.1.conv2.weight" in theirs and "stem.bn.running_var" in theirs
    path = spec_file("""
        extends: resnet18.yaml
        rename:
          "stages.{s}.blocks.{b}": "layer{s+1}.{b}"
          're:^stem\\.(conv|bn)\\.': '\\g<1>1.'
          head: fc
    """)
    model = engine.build(path).eval()
    engine.load_reference_state_dict(model, theirs, path, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-5, atol=1e-5)
