"""The JSON Schema of the spec language, generated from the block registry.

`engine schema` prints it for editors (YAML language servers give completion and checks from
it); the validate stage checks every merged spec against it. Any argument may also be written
as an expression string (`$width`, `${width * 4}`).
"""

from __future__ import annotations

import copy
import re
import types
import typing
from typing import Any

import jsonschema

from engine.blocks.registry import INFERRED, all_blocks, type_name

EXPR = {"type": "string", "pattern": r"^\$"}
NODE_KEYS = {
    "op": {"type": "string", "description": "a registered block (`engine blocks`) or a block of this spec"},
    "in": {"description": "input node(s): a name, `name.output`, or a list",
           "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "repeat": {"description": "apply the op N times in a chain (numbered children)",
               "anyOf": [{"type": "integer", "minimum": 0}, EXPR]},
    "names": {"type": "string", "description": "child names of a repeat, e.g. layer_${i}"},
    "args": {"type": "object", "description": "arguments (for repeats: evaluated per index i)"},
    "first": {"type": "object", "description": "arguments overriding `args` for the first repeat"},
    "last": {"type": "object", "description": "arguments overriding `args` for the last repeat"},
    "when": {"description": "false: the node passes its input through (in seq: is dropped)",
             "anyOf": [{"type": "boolean"}, EXPR]},
    "otherwise": {"type": "string", "description": "the input a node switched off by `when:` "
                  "passes on (required where it has several inputs)"},
    "seq": {"type": "array", "items": {"$ref": "#/$defs/seq_item"},
            "description": "a chain of nodes named 0, 1, ... (like nn.Sequential)"},
    "graph": {"$ref": "#/$defs/graph"},
    "outputs": {"$ref": "#/$defs/outputs"},
    "share": {"anyOf": [{"type": "string"}, {"type": "boolean"}],
              "description": "reuse the module (weights) of an earlier node; on a repeat, true: "
                             "one module applied N times (a recursion)"},
    "map": {"type": "boolean",
            "description": "on a recursion: application k takes input k (in: rec.*), not the previous"},
    "tie": {"type": "object", "additionalProperties": {"type": "string"},
            "description": "tie parameters to another node's: {weight: embed.weight}"},
    "freeze": {"anyOf": [{"type": "boolean"}, EXPR],
               "description": "true: this node's parameters are not trained"},
    "spectral_norm": {"anyOf": [{"type": "boolean"}, EXPR],
                      "description": "true: the weight is spectrally normalised "
                                     "(Miyato et al., 2018); conv, linear, embedding layers"},
    "init": {"type": ["object", "string", "number"],
             "description": "init rules {weight: zeros, ...}; for a parameter node, its own rule"},
}


def spec_schema(fast_dispatch: bool = False, editor: bool = True) -> dict[str, Any]:
    """The schema. `fast_dispatch` replaces the standard per-op `if`/`then` chain by the
    `opDispatch` keyword of `dispatching_validator` (same rules, one lookup per node).

    `editor` (what `engine schema` prints) is the schema of a file as written, before merging:
    it accepts the `$delete`/`$replace` keys and a block or network given in part (an extending
    spec changes one entry of it). The validate stage checks the merged spec strictly."""
    ops = all_blocks()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "engine spec",
        "type": "object",
        "properties": {
            "name": {"type": "string"}, "description": {"type": "string"},
            "extends": {"type": "string"},
            "include": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "params": {"type": "object"},
            "dims": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}},
            "inputs": {"$ref": "#/$defs/inputs"},
            "graph": {"$ref": "#/$defs/graph"},
            "outputs": {"$ref": "#/$defs/outputs"},
            "blocks": {"type": "object", "additionalProperties": {"$ref": "#/$defs/block"}},
            "networks": {"type": "object", "additionalProperties": {"$ref": "#/$defs/network"}},
            "init": {"type": "object", "additionalProperties": {"type": "object"}},
            "rename": {"type": "object", "additionalProperties": {"type": "string"}},
            "functions": {"type": "object", "additionalProperties": {"$ref": "#/$defs/function"},
                          "description": "named helpers callable from every expression of the "
                                         "spec: name: {args, let, expr}"},
        },
        "additionalProperties": False,
        "$defs": {**_common_defs(), **{f"op_{name}": _op_schema(info) for name, info in ops.items()},
                  "node": _node_schema(ops, fast_dispatch)},
    }
    if not editor:
        return schema
    for part in ("block", "network"):
        schema["$defs"][part].pop("required")
    return with_merge_keys(schema)


# The tag-free spelling of `!delete` and `!replace` (engine/compiler/load.py): plain YAML keys
# that editors and check-jsonschema accept. Every mapping of a spec or recipe may carry them.
MERGE_KEYS = {
    "$delete": {"description": "remove these inherited entries (the tag-free `key: !delete`)",
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "$replace": {"const": True, "description": "true: this mapping replaces the inherited one "
                                               "instead of merging into it (the tag-free `!replace`)"},
}


def with_merge_keys(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` whose every mapping schema (one with `properties` or
    `additionalProperties`) also accepts the `$delete` and `$replace` keys."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node or "additionalProperties" in node:
                node["properties"] = {**node.get("properties", {}), **MERGE_KEYS}
            for key, value in node.items():
                if key != "properties" or not isinstance(value, dict):
                    walk(value)
                else:
                    for name, sub in value.items():
                        if name not in MERGE_KEYS:
                            walk(sub)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(out)
    return out


def _common_defs() -> dict[str, Any]:
    return {
        "inputs": {"type": "object", "additionalProperties": {"anyOf": [
            {"$ref": "#/$defs/shape"},
            {"type": "object", "properties": {"shape": {"$ref": "#/$defs/shape"},
                                              "dtype": {"type": "string"},
                                              "channels_first": {"type": "boolean"}},
             "required": ["shape"], "additionalProperties": False}]}},
        "shape": {"type": "array", "items": {"anyOf": [{"type": "integer", "minimum": 0},
                                                       {"type": "string"}]}},
        "outputs": {"anyOf": [{"type": "string"}, {"type": "object", "additionalProperties": {"anyOf": [
            {"type": "string"},
            {"type": "object", "required": ["node"], "additionalProperties": False,
             "description": "an output a param switches on: {node: aux1, when: $aux_logits}",
             "properties": {"node": {"type": "string"}, "when": {}}}]}}]},
        "graph": {"type": "object", "additionalProperties": {"$ref": "#/$defs/node"}},
        "seq_item": {
            "if": {"type": "object", "required": ["each"]},
            "then": {"type": "object", "required": ["each", "seq"], "additionalProperties": False,
                     "properties": {"each": {}, "as": {"type": "string"}, "seq": NODE_KEYS["seq"]}},
            "else": {"$ref": "#/$defs/node"}},
        "block": {"type": "object", "properties": {
            "params": {"type": "object"},
            "inputs": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "nodes": {"$ref": "#/$defs/graph"}, "outputs": {"$ref": "#/$defs/outputs"},
            "description": {"type": "string"}},
            "required": ["nodes"], "additionalProperties": False},
        "function": {"type": "object", "properties": {
            "args": {"type": "array", "description": "argument names; {name: default} for an optional one",
                     "items": {"anyOf": [{"type": "string"}, {"type": "object", "minProperties": 1,
                                                              "maxProperties": 1}]}},
            "let": {"type": "object", "description": "local values, in order: name: ${...}"},
            "expr": {"type": "string", "description": "the result: one ${...} expression"},
            "description": {"type": "string"}},
            "required": ["expr"], "additionalProperties": False},
        "network": {"type": "object", "properties": {
            "inputs": {"$ref": "#/$defs/inputs"}, "graph": {"$ref": "#/$defs/graph"},
            "outputs": {"$ref": "#/$defs/outputs"}, "description": {"type": "string"}},
            "required": ["graph"], "additionalProperties": False},
    }


def recipe_schema(schema: dict[str, Any], descriptions: dict[str, str]) -> dict[str, Any]:
    """What `engine schema --recipe` prints: the recipe schema of engine/train/recipe.py for a
    file as written: every property described (`descriptions`: {dotted path: text}, else its
    name and type), the `$delete`/`$replace` keys accepted, and the required keys required only
    of a recipe without `extends:` (an extending recipe gives just what it changes)."""
    out = with_merge_keys(schema)

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            node.pop("required", None)
            for name, sub in (node.get("properties") or {}).items():
                if name in MERGE_KEYS:
                    continue
                where = f"{path}.{name}" if path else name
                if isinstance(sub, dict) and "description" not in sub:
                    kind = sub.get("type") or "see the reference"
                    sub["description"] = descriptions.get(where) or f"{name} ({kind})"
                walk(sub, where)
            for key in ("items", "additionalProperties"):
                walk(node.get(key), path)
            for alt in node.get("anyOf") or ():
                walk(alt, path)

    required = out.pop("required", [])
    walk(out, "")
    out["if"], out["else"] = {"required": ["extends"]}, {"required": required}
    return out


def _node_schema(ops: dict, fast_dispatch: bool) -> dict[str, Any]:
    # A primitive op fixes the node's keys; a spec-defined block's arguments are checked
    # against its `params:` by the validate stage instead.
    # `properties` and the dispatch only constrain mappings; a string is the `relu: relu` shorthand
    if fast_dispatch:  # the validator's: check_op names the op (with a did-you-mean), and a
        # list of every op's name as consts made an error object per name tried, for every node
        return {"type": ["string", "object"], "properties": NODE_KEYS, "opDispatch": True}
    op = {"description": NODE_KEYS["op"]["description"],
          "anyOf": [*({"const": name, "description": info.doc.split("\n")[0] or name}
                      for name, info in ops.items()),
                    {"type": "string", "description": "a block defined under `blocks:`"}]}
    node = {"type": ["string", "object"], "properties": {**NODE_KEYS, "op": op}}
    dispatch = [{"if": {"properties": {"op": {"const": name}}, "required": ["op"]},
                 "then": {"$ref": f"#/$defs/op_{name}"}} for name in ops]
    return {**node, "allOf": dispatch}


def dispatching_validator() -> jsonschema.protocols.Validator:
    """A Draft 2020-12 validator of the spec schema that dispatches on `op` directly."""
    schema = spec_schema(fast_dispatch=True, editor=False)
    ops = {name for name in schema["$defs"] if name.startswith("op_")}

    for name in ops:  # each argument's `anyOf: [its type, EXPR]`, tried in Python first
        for prop in schema["$defs"][name]["properties"].values():
            if "anyOf" in prop and predicate(prop) is not None:
                prop["fastAnyOf"] = prop.pop("anyOf")

    def op_dispatch(validator, enabled, instance, _schema):
        op = instance.get("op") if isinstance(instance, dict) else None
        if enabled and isinstance(op, str) and f"op_{op}" in ops:
            yield from validator.descend(instance, {"$ref": f"#/$defs/op_{op}"})

    def fast_any_of(validator, branches, instance, _schema):
        # jsonschema makes an error object for every branch that fails before one holds (an
        # int argument fails EXPR, `$width` fails int): most of a spec's schema check
        if not predicate({"anyOf": branches})(instance):
            yield from validator.descend(instance, {"anyOf": branches})

    cls = jsonschema.validators.extend(jsonschema.Draft202012Validator,
                                       {"opDispatch": op_dispatch, "fastAnyOf": fast_any_of})
    return cls(schema)


_TYPES = {"integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "boolean": lambda v: isinstance(v, bool), "string": lambda v: isinstance(v, str),
          "null": lambda v: v is None}
_PREDICATES: dict[int, Any] = {}


def predicate(schema: dict) -> typing.Callable[[Any], bool] | None:
    """A Python test that accepts only what `schema` accepts (it may refuse more: the schema
    then decides), for the simple schemas of block arguments; None for any other schema."""
    key = id(schema.get("anyOf", schema))
    if key not in _PREDICATES:
        _PREDICATES[key] = (schema.get("anyOf", schema), _predicate(schema))  # keep the id alive
    return _PREDICATES[key][1]


def _predicate(schema: dict) -> typing.Callable[[Any], bool] | None:
    keys = set(schema) - {"description"}
    if keys == {"anyOf"}:
        tests = [_predicate(branch) for branch in schema["anyOf"]]
        return None if None in tests else (lambda v: any(test(v) for test in tests))
    if keys == {"type"} and schema["type"] in _TYPES:
        return _TYPES[schema["type"]]
    if keys == {"type", "pattern"} and schema["type"] == "string":
        pattern = re.compile(schema["pattern"])
        return lambda v: isinstance(v, str) and pattern.search(v) is not None
    if schema.get("type") == "array" and keys <= {"type", "items"}:
        item = _predicate(schema.get("items") or {})
        return None if item is None else (lambda v: isinstance(v, list) and all(map(item, v)))
    return (lambda v: True) if not keys else None


def _op_schema(info) -> dict[str, Any]:
    args = {n: a for n, a in info.args.items() if n not in INFERRED}
    props = {n: {"description": _arg_doc(n, a, info.doc), "anyOf": [_type_schema(a.annotation), EXPR]}
             for n, a in args.items()}
    required = [n for n, a in args.items() if a.required]
    schema = {"description": info.doc.split("\n")[0], "properties": {**NODE_KEYS, **props},
              "additionalProperties": False}
    if required:
        # a repeat may give required arguments through `args:`; a shared node takes its target's
        schema["if"] = {"not": {"anyOf": [{"required": ["args"]}, {"required": ["share"]}]}}
        schema["then"] = {"required": required}
    return schema


def _arg_doc(name: str, arg, doc: str) -> str:
    """`name (type, default d)`, with the first sentence of the block's docstring that names
    the argument (`name` or `name: ...` as code) where there is one."""
    generic = f"{name} ({type_name(arg.annotation)}" + (
        ", required)" if arg.required else f", default {arg.default!r})")
    text = " ".join(doc.split())
    for sentence in re.split(r"(?<=[.;])\s+", text):
        if f"`{name}`" in sentence or re.search(rf"`{name}: [^`]*`", sentence):
            return f"{generic}: {sentence}"
    return generic


def _type_schema(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        return {"anyOf": [_type_schema(a) for a in typing.get_args(annotation)]}
    if origin is list:
        inner = typing.get_args(annotation)
        item = {"anyOf": [_type_schema(inner[0]), EXPR]} if inner else {}
        return {"type": "array", "items": item}
    simple = {int: "integer", float: "number", bool: "boolean", str: "string",
              type(None): "null"}
    return {"type": simple[annotation]} if annotation in simple else {}
