"""The spec language is documented, and every bundled spec says how to build and train it.

`docs/spec-language.md` is the reference: each key the JSON Schema of specs accepts (top level,
node, block, network, `each:` item, input declaration) must appear in it as a code span, so a
key added to `engine/compiler/schema.py` without documentation fails here. Op arguments
(`$defs/op_*`) are not keys of the language: `engine blocks` documents them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.compiler.merge import RECIPES_DIR, SPECS_DIR, load_merged
from engine.compiler.schema import spec_schema

DOC = SPECS_DIR.parent / "docs" / "spec-language.md"
SPECS = sorted(p.stem for p in SPECS_DIR.glob("*.yaml"))


def schema_keys(schema: dict) -> dict[str, set[str]]:
    """{where: property names} for every `properties` of the schema, op argument lists excepted."""
    found: dict[str, set[str]] = {}

    def walk(node, where: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict):
                found.setdefault(where, set()).update(node["properties"])
            for key, value in node.items():
                if (where == "$defs" and key.startswith("op_")) or key in ("if", "not"):
                    continue  # op arguments; `if` conditions name keys, they do not declare them
                walk(value, key if key not in ("properties", "then", "else", "anyOf",
                                               "additionalProperties") else where)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(schema, "top level")
    return found


def code_spans(text: str) -> set[str]:
    return {span.strip() for span in re.findall(r"`([^`\n]+)`", text)}


def documents(spans: set[str], key: str) -> bool:
    """`key`, `key:` or `key: value` as a code span."""
    return any(s == key or s == f"{key}:" or s.startswith(f"{key}: ") for s in spans)


KEYS = schema_keys(spec_schema())


def test_schema_walk_finds_the_key_sets():
    # the walk must see the places keys are written, or the documentation test below is empty
    assert {"name", "extends", "include", "params", "graph", "networks"} <= KEYS["top level"]
    everything = set().union(*KEYS.values())
    assert {"op", "in", "repeat", "share", "map", "when", "seq", "nodes", "each", "as",
            "dtype"} <= everything
    assert not any(k.startswith("op_") for k in KEYS), "op arguments are not language keys"


@pytest.mark.parametrize("where,key", sorted((w, k) for w, keys in KEYS.items() for k in keys))
def test_every_schema_key_is_in_the_reference(where, key):
    spans = code_spans(DOC.read_text())
    assert documents(spans, key), (
        f"`{key}` ({where}) is accepted by the spec schema but not documented in "
        f"docs/spec-language.md: add it as a code span (`{key}:`) with a short example")


def test_documents_needs_a_code_span():
    spans = code_spans("`map: true` on a recursion; share with a node; `in: rec.*`")
    assert documents(spans, "map") and documents(spans, "in")
    assert not documents(spans, "share") and not documents(spans, "rec")


def header(name: str) -> str:
    lines = (SPECS_DIR / f"{name}.yaml").read_text().splitlines()
    out = []
    for line in lines:
        if not line.startswith("#"):
            break
        out.append(line)
    return "\n".join(out)


def recipes_by_spec() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        spec = load_merged(path, recipe=True).get("spec")  # `spec: NAME` or `spec: {name: NAME, ...}`
        spec = spec.get("name") if isinstance(spec, dict) else spec
        if spec is not None:
            out.setdefault(Path(str(spec)).stem, []).append(path.name)
    return out


@pytest.fixture(scope="module")
def trained_by():
    return recipes_by_spec()


@pytest.mark.parametrize("name", SPECS)
def test_spec_header_gives_the_build_and_train_commands(name, trained_by):
    text = header(name)
    assert text, f"{name}.yaml does not open with a comment"
    assert re.search(rf"engine build {re.escape(name)}\b", text), \
        f"{name}.yaml's header does not say `engine build {name}`"
    for recipe in trained_by.get(name, []):
        assert f"engine train recipes/{recipe}" in text, \
            f"recipes/{recipe} trains {name}, but {name}.yaml's header does not say " \
            f"`engine train recipes/{recipe}`"


def test_recipes_are_found(trained_by):
    assert "dcgan_mnist.yaml" in trained_by["dcgan"]
    assert "srcnn_x3.yaml" in trained_by["srcnn"]  # written `spec: {name: srcnn, set: ...}`
