"""Editors and check-jsonschema see the bundled files as plain YAML: every bundled spec and recipe
loads with yaml.safe_load (no custom tags) and validates against what `engine schema` (or
`engine schema --recipe`) prints; the tag-free `$delete`/`$replace` spelling behaves exactly like
the `!delete`/`!replace` tags."""

from __future__ import annotations

import json
import textwrap
from functools import lru_cache

import jsonschema
import pytest
import yaml

from engine.cli import main
from engine.compiler.ir import SpecError
from engine.compiler.merge import RECIPES_DIR, SPECS_DIR, load_merged

SPECS = sorted(SPECS_DIR.glob("*.yaml"))
RECIPES = sorted(RECIPES_DIR.glob("*.yaml"))


def printed(capsys, *argv: str) -> dict:
    assert main(["schema", *argv]) == 0
    return json.loads(capsys.readouterr().out)


@lru_cache(maxsize=2)
def _validator(text: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def validators() -> dict[str, jsonschema.Draft202012Validator]:
    from engine.compiler.schema import recipe_schema, spec_schema
    from engine.train.recipe import DESCRIPTIONS, SCHEMA
    return {"spec": _validator(json.dumps(spec_schema())),
            "recipe": _validator(json.dumps(recipe_schema(SCHEMA, DESCRIPTIONS)))}


def test_printed_schemas_are_the_ones_checked(capsys, validators):
    assert printed(capsys) == validators["spec"].schema
    assert printed(capsys, "--recipe") == validators["recipe"].schema


def _errors(validator, path) -> list[str]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))  # fails on a custom tag
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}"
            for e in validator.iter_errors(doc)]


def test_every_bundled_spec_validates_as_plain_yaml(validators):
    bad = {p.name: errs[:2] for p in SPECS if (errs := _errors(validators["spec"], p))}
    assert not bad


def test_every_bundled_recipe_validates_as_plain_yaml(validators):
    bad = {p.name: errs[:2] for p in RECIPES if (errs := _errors(validators["recipe"], p))}
    assert not bad


def test_no_bundled_file_uses_a_tag():
    tagged = [p.name for p in [*SPECS, *RECIPES] if "!delete" in _code(p) or "!replace" in _code(p)]
    assert not tagged


def _code(path) -> str:
    return "\n".join(line.split("#")[0] for line in path.read_text(encoding="utf-8").splitlines())


def test_recipe_schema_describes_every_property(validators):
    missing = []

    def walk(node, where):
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                if not (isinstance(sub, dict) and sub.get("description")):
                    missing.append(f"{where}{name}")
                walk(sub, f"{where}{name}.")
            for key in ("items", "additionalProperties"):
                walk(node.get(key), where)
            for alt in node.get("anyOf") or ():
                walk(alt, where)

    walk(validators["recipe"].schema, "")
    assert not missing


def test_spec_schema_completes_ops_and_describes_arguments(validators):
    from engine.compiler.schema import MERGE_KEYS, NODE_KEYS
    schema = validators["spec"].schema
    ops = schema["$defs"]["node"]["properties"]["op"]["anyOf"]
    names = {o["const"]: o["description"] for o in ops if "const" in o}
    assert "conv" in names and all(names.values())
    for name, op in schema["$defs"].items():
        if name.startswith("op_"):
            for arg, sub in op["properties"].items():
                if arg in NODE_KEYS or arg in MERGE_KEYS:
                    continue
                assert sub.get("description"), f"{name}.{arg}"
    conv = schema["$defs"]["op_conv"]["properties"]["out"]["description"]
    assert conv.startswith("out (int")


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


BASE = """
    name: base
    params: {width: 8, classes: 10}
    inputs: {x: [B, 3, 8, 8]}
    graph:
      conv: {op: conv, out: $width, k: 3, pad: 1}
      relu: relu
      pool: {op: avgpool, k: 8}
      flat: {op: flatten}
      fc: {op: linear, out: $classes, in: flat}
    outputs: {logits: fc, feat: pool}
"""
TAGS = """
    extends: base.yaml
    params: !replace {width: 4, classes: 3}
    graph:
      relu: !delete
      pool: !replace {op: avgpool, k: 8, in: conv}
    outputs: !replace {logits: fc}
"""
TAG_FREE = """
    extends: base.yaml
    params: {$replace: true, width: 4, classes: 3}
    graph:
      $delete: [relu]
      pool:
        $replace: true
        op: avgpool
        k: 8
        in: conv
    outputs: {$replace: true, logits: fc}
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_tag_free_spelling_resolves_like_the_tags(tmp_path):
    from engine.compiler import analyze
    _write(tmp_path, "base.yaml", BASE)
    tags, free = _write(tmp_path, "tags.yaml", TAGS), _write(tmp_path, "free.yaml", TAG_FREE)
    merged = _plain(load_merged(tags))
    assert merged == _plain(load_merged(free))
    assert "relu" not in merged["graph"] and merged["outputs"] == {"logits": "fc"}
    assert merged["params"] == {"width": 4, "classes": 3}
    a, b = analyze(tags), analyze(free)
    assert [n for n in a.spec.networks] == [n for n in b.spec.networks]


def test_tag_free_spelling_in_recipes(tmp_path):
    base = _write(tmp_path, "base.yaml", """
        name: r
        optimizer: {name: adam, lr: 0.001}
        scheduler: {name: cosine}
    """)
    assert base
    tags = _write(tmp_path, "t.yaml", "extends: base.yaml\noptimizer: !replace {name: sgd, lr: 0.1}\n"
                                      "scheduler: !delete\n")
    free = _write(tmp_path, "f.yaml", "extends: base.yaml\noptimizer: {$replace: true, name: sgd, "
                                      "lr: 0.1}\n$delete: scheduler\n")
    assert _plain(load_merged(tags, recipe=True)) == _plain(load_merged(free, recipe=True)) == \
        {"name": "r", "optimizer": {"name": "sgd", "lr": 0.1}}


@pytest.mark.parametrize("text,message,line", [
    ("graph:\n  $delete: [fc2]\n", "nothing named 'fc2' is inherited", 3),
    ("graph:\n  $delete: [fc]\n  fc: {op: linear, out: 2}\n", "both deleted", 3),
    ("graph:\n  $delete: [3]\n", "`$delete:` lists names", 3),
    ("outputs: {$replace: yes please, logits: fc}\n", "`$replace:` takes true", 2),
])
def test_tag_free_spelling_errors_are_located(tmp_path, text, message, line):
    _write(tmp_path, "base.yaml", BASE)
    path = _write(tmp_path, "x.yaml", "extends: base.yaml\n" + text)
    with pytest.raises(SpecError) as err:
        load_merged(path)
    diag = err.value.diagnostics[0]
    assert message in diag.message and diag.loc.file == str(path) and diag.loc.line == line
