"""`engine diff`: structural diff of two specs, with per-node deltas and a weight-transfer report."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

import engine
from engine.cli import main
from engine.compiler.build import build
from engine.compiler.walk import all_nodes
from engine.views.diff import diff_json, diff_specs, format_diff, state_entries

BASE = """
    inputs: {x: [B, 8]}
    graph:
      fc1: {op: linear, out: 16}
      act: relu
      fc2: {op: linear, out: 4}
"""


@pytest.fixture(scope="module")
def shaped():
    cache: dict = {}

    def get(name: str, *overrides: str):
        key = (name, overrides)
        if key not in cache:
            cache[key] = engine.analyze(name, list(overrides))
        return cache[key]

    return get


def diff_text(spec_file, a: str, b: str):
    pa, pb = spec_file(a, "a.yaml"), spec_file(b, "b.yaml")
    result = diff_specs(engine.analyze(pa), engine.analyze(pb))
    return result, format_diff(result)


def run(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def check_status_covers_both(result, a, b):
    """Every node of B is in `status`; every node of A is matched or in `status` as removed."""
    paths_a = {n.path for n in all_nodes(a.spec)}
    paths_b = {n.path for n in all_nodes(b.spec)}
    assert paths_b <= set(result.status)
    removed = {p for p, s in result.status.items() if s == "removed"}
    assert paths_a == removed | set(result.pairs.values())
    assert set(result.status) == paths_b | removed


# ---- the acceptance checks ------------------------------------------------------------

def test_resnet50_v1_against_v15_same_params_more_macs(capsys, shaped):
    code, out = run(capsys, "diff", "resnet50_v1", "resnet50")
    assert code == 0
    result = diff_specs(shaped("resnet50_v1"), shaped("resnet50"))
    assert result.params[0] == result.params[1] == 25_557_032
    assert result.macs[1] - result.macs[0] == 231_211_008
    strides = {c.path: c.args for c in result.changes if c.own}
    expected = {}
    for layer in ("layer2", "layer3", "layer4"):
        expected[f"{layer}.0.conv1"] = {"stride": (2, 1)}
        expected[f"{layer}.0.conv2"] = {"stride": (1, 2)}
    assert strides == expected
    for path in expected:
        assert result.status[path] == "changed"
        assert path in out
    # a block whose insides changed is changed; the rest is untouched
    assert result.status["layer2"] == result.status["layer2.0"] == "changed"
    assert result.status["layer2.0.conv3"] == result.status["layer2.1"] == "unchanged"
    assert result.status["layer1"] == result.status["fc"] == "unchanged"
    assert not result.added and not result.removed and not result.renames
    check_status_covers_both(result, shaped("resnet50_v1"), shaped("resnet50"))
    assert "stride 2 -> 1" in out and "stride 1 -> 2" in out
    assert "25,557,032 ->       25,557,032  (+0)" in out
    assert "+231,211,008" in out
    # the same weights: everything loads unchanged
    w = result.weights
    assert len(w.unchanged) == 320 and not (w.changed or w.new or w.dropped)


def test_resnet50_v1_has_the_stride_on_the_first_conv(shaped):
    nodes = shaped("resnet50_v1").nodes
    assert nodes["layer2.0.conv1"].outputs[0].shape == (1, 128, 28, 28)
    assert nodes["layer2.0.conv2"].args["stride"] == 1
    assert nodes["layer1.0.conv1"].outputs[0].shape == (1, 64, 56, 56)
    assert nodes["fc"].outputs[0].shape == (1, 1000)
    # the same state_dict as torchvision's resnet50 (v1.5): its weights load as they are
    with torch.device("meta"):
        ref = torchvision.models.resnet50()
    assert state_entries(shaped("resnet50_v1")) == {
        k: list(v.shape) for k, v in ref.state_dict().items()}


def test_resnet50_against_resnet101_adds_17_blocks(capsys, shaped):
    a, b = shaped("resnet50"), shaped("resnet101")
    result = diff_specs(a, b)
    assert [(g.label, g.op, g.count, g.params) for g in result.added] == [
        ("layer3.6-22", "bottleneck", 17, 18_992_128)]
    assert result.added[0].paths == [f"layer3.{i}" for i in range(6, 23)]
    assert result.params[1] - result.params[0] == 18_992_128
    assert not result.removed and not result.renames
    assert result.status["layer3.6"] == result.status["layer3.22.conv2"] == "added"
    assert result.status["layer3"] == "changed"
    assert result.status["layer3.5"] == result.status["layer4"] == "unchanged"
    layer3 = next(c for c in result.changes if c.path == "layer3")
    assert layer3.repeat == (6, 23)
    check_status_covers_both(result, a, b)
    code, out = run(capsys, "diff", "resnet50", "resnet101")
    assert code == 0
    assert "layer3.6-22: 17 x bottleneck added, +18,992,128 params" in out
    assert "(+18,992,128)" in out
    assert "layer3.6.conv1" not in out.split("weight transfer")[0]  # the blocks, not their convs
    assert len(result.weights.new) == 17 * 18 and not result.weights.dropped


def test_weight_transfer_of_a_new_classifier(capsys, shaped):
    a, b = shaped("resnet50"), shaped("resnet50", "num_classes=10")
    w = diff_specs(a, b).weights
    assert w.changed == {"fc.weight": ([1000, 2048], [10, 2048]), "fc.bias": ([1000], [10])}
    assert w.new == {} and w.dropped == {}
    keys = set(state_entries(a))
    assert set(w.unchanged) == keys - {"fc.weight", "fc.bias"} and len(keys) == 320
    code, out = run(capsys, "diff", "resnet50", "resnet50", "--set-b", "num_classes=10")
    assert code == 0
    report = out.split("weight transfer")[1]
    assert "318 load unchanged, 2 change shape, 0 new in B, 0 dropped from A" in report
    assert "fc.weight" in report and "fc.bias" in report
    assert "[1000, 2048] -> [10, 2048]" in report


def test_state_entries_match_the_built_model(shaped):
    """The report reads keys from the meta modules: the same keys and shapes as a build."""
    for name in ("resnet50", "vit_b16"):
        model = build(engine.analyze(name), device="meta")
        assert state_entries(shaped(name)) == {k: list(v.shape)
                                               for k, v in model.state_dict().items()}


# ---- matching: renames, rewiring, added and removed nodes ------------------------------------

def test_a_renamed_node_is_renamed_not_added_and_removed(spec_file):
    result, text = diff_text(spec_file, BASE, """
        inputs: {x: [B, 8]}
        graph:
          proj: {op: linear, out: 16}
          nonlin: relu
          fc2: {op: linear, out: 4}
    """)
    assert result.renames == {"fc1": "proj", "act": "nonlin"}
    assert result.status == {"proj": "renamed", "nonlin": "renamed", "fc2": "unchanged"}
    assert not result.added and not result.removed
    assert not result.changes  # fc2 reads from the renamed node: no rewiring
    assert "fc1 -> proj" in text and "act -> nonlin" in text
    w = result.weights
    assert w.renamed == {"fc1.weight": "proj.weight", "fc1.bias": "proj.bias"}
    assert set(w.unchanged) == {"fc2.weight", "fc2.bias"}


def test_a_renamed_block_keeps_its_contents(spec_file):
    block = """
        blocks:
          mlp: {nodes: {a: {op: linear, out: 8}, b: relu}}
        inputs: {x: [B, 8]}
        graph:
          NAME: {op: mlp}
          head: {op: linear, out: 2}
    """
    result, text = diff_text(spec_file, block.replace("NAME", "body"),
                             block.replace("NAME", "trunk"))
    assert result.status["trunk"] == "renamed"
    assert result.renamed == {"body": "trunk"}
    assert result.renames == {"body": "trunk", "body.a": "trunk.a", "body.b": "trunk.b"}
    assert "body -> trunk" in text and "\nadded (" not in text


def test_an_edge_rewired(spec_file):
    result, text = diff_text(spec_file, """
        inputs: {x: [B, 4]}
        graph:
          a: {op: linear, out: 4}
          b: {op: linear, out: 4, in: x}
          c: {op: add, in: [a, b]}
    """, """
        inputs: {x: [B, 4]}
        graph:
          a: {op: linear, out: 4}
          b: {op: linear, out: 4, in: a}
          c: {op: add, in: [a, b]}
    """)
    assert result.status == {"a": "unchanged", "b": "changed", "c": "unchanged"}
    [change] = result.changes
    assert change.path == "b" and change.inputs == (["x"], ["a"]) and not change.args
    assert change.params == (20, 20) and change.macs == (16, 16)
    assert "~ b (linear): in x -> a" in text
    assert result.params == (40, 40)


def test_added_and_removed_nodes(spec_file):
    result, text = diff_text(spec_file, """
        inputs: {x: [B, 8]}
        graph:
          fc1: {op: linear, out: 16}
          norm: layernorm
          act: relu
          fc2: {op: linear, out: 4}
    """, """
        inputs: {x: [B, 8]}
        graph:
          fc1: {op: linear, out: 16}
          act: relu
          drop: {op: dropout, p: 0.1}
          fc2: {op: linear, out: 4}
    """)
    assert result.status == {"fc1": "unchanged", "act": "changed", "drop": "added",
                             "fc2": "changed", "norm": "removed"}
    assert [(g.label, g.op, g.params) for g in result.added] == [("drop", "dropout", 0)]
    assert [(g.label, g.op, g.params) for g in result.removed] == [("norm", "layernorm", 32)]
    edges = {c.path: c.inputs for c in result.changes}
    assert edges == {"act": (["norm"], ["fc1"]), "fc2": (["act"], ["drop"])}
    assert "+ drop (dropout) added" in text and "- norm (layernorm) removed" in text
    assert result.weights.dropped == {"norm.weight": [16], "norm.bias": [16]}
    assert result.params[1] - result.params[0] == -32


def test_numbered_siblings_shifted_by_an_insertion(shaped):
    """vgg19_bn inserts a BatchNorm after every conv: 16 added, the rest renumbered."""
    result = diff_specs(shaped("vgg19"), shaped("vgg19_bn"))
    assert [(g.op, g.count) for g in result.added] == [("batchnorm", 16)]
    assert not result.removed
    assert result.params[1] - result.params[0] == 11_008
    assert result.renames["features.2"] == "features.3"  # the second conv
    assert all(c.op == "relu" and c.inputs for c in result.changes if c.own)
    check_status_covers_both(result, shaped("vgg19"), shaped("vgg19_bn"))


def test_identical_specs_have_no_change(shaped):
    result = diff_specs(shaped("vit_b16"), shaped("vit_b16"))
    assert set(result.status.values()) == {"unchanged"}
    assert not (result.changes or result.added or result.removed or result.renames)
    assert "no structural change" in format_diff(result)


def test_several_networks_are_diffed_per_network(spec_file, capsys):
    gan = """
        params: {{z: 4}}
        networks:
          generator:
            inputs: {{z: [B, $z]}}
            graph:
              fc: {{op: linear, out: 6}}
          discriminator:
            inputs: {{x: [B, 6]}}
            graph:
              fc: {{op: linear, out: {out}}}
              {extra}
    """
    result, text = diff_text(spec_file, gan.format(out=1, extra=""),
                             gan.format(out=2, extra="act: sigmoid"))
    assert result.status == {"generator.fc": "unchanged", "discriminator.fc": "changed",
                             "discriminator.act": "added"}
    assert [n.name for n in result.networks] == ["generator", "discriminator"]
    assert result.networks[1].params == (7, 14)
    assert "== network discriminator ==" in text and "out 1 -> 2" in text
    assert json.loads(json.dumps(diff_json(result)))["status"] == result.status


# ---- output ---------------------------------------------------------------------------------

def test_json_output_is_serialisable(capsys, shaped):
    for a, b in (("vgg19", "vgg19_bn"), ("resnet50_v1", "resnet50")):
        data = diff_json(diff_specs(shaped(a), shaped(b)))
        assert json.loads(json.dumps(data)) == data
    assert data["totals"]["macs"]["delta"] == 231_211_008
    assert data["totals"]["params"]["delta"] == 0
    code, out = run(capsys, "diff", "resnet50", "resnet101", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["totals"]["params"] == {"a": 25_557_032, "b": 44_549_160, "delta": 18_992_128}
    assert data["added"][0]["label"] == "layer3.6-22"


def test_cli_prints_the_totals(capsys, spec_file):
    a = spec_file(BASE, "a.yaml")
    b = spec_file(BASE.replace("out: 4", "out: 3"), "b.yaml")
    code, out = run(capsys, "diff", str(a), str(b))
    assert code == 0
    assert "totals (A -> B):" in out
    assert "212 ->              195  (-17)" in out  # 8*16+16 + 16*4+4 -> 8*16+16 + 16*3+3
    assert "~ fc2 (linear): out 4 -> 3" in out
