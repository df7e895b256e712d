"""Stage 2a: extends (deep merge, !delete, !replace), include, file-access limits, --set."""

from __future__ import annotations

import pytest

import engine
from engine.compiler.ir import SpecError
from engine.compiler.merge import load_merged, parse_overrides

BASE = """
    name: base
    params: {n: 4, widths: [2, 3]}
    inputs: {x: [B, 5]}
    graph:
      fc1: {op: linear, out: $n}
      act: relu
      fc2: {op: linear, out: 2}
"""


def test_deep_merge_changes_args_and_appends_nodes(spec_file):
    spec_file(BASE, "base.yaml")
    child = spec_file("""
        extends: base.yaml
        name: child
        params: {n: 6}
        graph:
          fc2: {out: 7}
          extra: {op: tanh}
    """, "child.yaml")
    m = engine.build(child)
    assert m.fc1.out_features == 6 and m.fc2.out_features == 7
    assert list(dict(m.named_children())) == ["fc1", "act", "fc2", "extra"]


def test_delete_and_replace(spec_file):
    spec_file(BASE, "base.yaml")
    child = spec_file("""
        extends: base.yaml
        graph:
          act: !delete
          fc2: !replace {op: linear, out: 9, bias: false}
    """, "child.yaml")
    m = engine.build(child)
    assert not hasattr(m, "act")
    assert m.fc2.out_features == 9 and m.fc2.bias is None


def test_delete_of_missing_entry_is_an_error(spec_file):
    spec_file(BASE, "base.yaml")
    child = spec_file("extends: base.yaml\ngraph:\n  nope: !delete\n", "child.yaml")
    with pytest.raises(SpecError, match="nothing named 'nope'"):
        engine.analyze(child)


def test_extends_loop_is_reported(spec_file):
    spec_file("extends: b.yaml\n", "a.yaml")
    b = spec_file("extends: a.yaml\n", "b.yaml")
    with pytest.raises(SpecError, match="extends loop: b.yaml -> a.yaml -> b.yaml"):
        load_merged(b)


def test_files_outside_the_spec_folder_cannot_be_read(spec_file, tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "secret.yaml").write_text("name: secret\n")
    path = inner / "spec.yaml"
    path.write_text("extends: ../secret.yaml\n")
    with pytest.raises(SpecError, match="outside the spec's folder"):
        load_merged(path)


def test_include_brings_blocks_from_a_library(spec_file):
    spec_file("""
        blocks:
          mlp:
            params: {hidden: int}
            nodes:
              fc: {op: linear, out: $hidden}
              act: relu
    """, "lib.yaml")
    path = spec_file("""
        include: lib.yaml
        inputs: {x: [B, 3]}
        graph:
          body: {op: mlp, hidden: 5}
    """)
    assert engine.build(path).body.fc.out_features == 5


def test_bundled_base_specs_can_be_extended_from_anywhere(spec_file):
    path = spec_file("extends: resnet50.yaml\nname: mine\nparams: {depths: [1, 1, 1, 1]}\n")
    shaped = engine.analyze(path)
    assert shaped.spec.name == "mine"


def test_set_parses_yaml_values_and_reports_unknown_params(spec_file):
    path = spec_file(BASE, "base.yaml")
    assert parse_overrides(["n=7", "widths=[1, 2]"])["widths"].value == [1, 2]
    with pytest.raises(SpecError, match="no param 'm'"):
        engine.analyze(path, ["m=3"])
    with pytest.raises(SpecError, match="cannot read override"):
        engine.analyze(path, ["n"])


def test_bundled_folders_are_the_checkouts_own_in_an_editable_install(monkeypatch):
    from engine.compiler import merge
    from tests.conftest import REPO
    assert merge.SPECS_DIR == REPO / "specs" and merge.RECIPES_DIR == REPO / "recipes"
    assert merge.bundled_folder("specs") == REPO / "specs"

    def not_installed(name):
        raise ModuleNotFoundError(name)
    monkeypatch.setattr(merge.resources, "files", not_installed)  # a source tree on PYTHONPATH
    assert merge.bundled_folder("recipes") == REPO / "recipes"
