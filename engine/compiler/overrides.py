"""`--set` overrides: one grammar for specs and recipes, close to Hydra's.

    key=value      set a key that exists (a dotted path into mappings: optimizer.lr=0.01)
    +key=value     add a key that does not exist yet (an error if it exists)
    ++key=value    set a key whether or not it exists
    ~key           delete a key (~key=value: only if it holds that value)

Values are read as YAML 1.2 core schema: `1e-3` is a float, `true`/`false` are booleans, `null` and
`~` are null, `[1, 2]` a list, `{a: 1}` a mapping; `yes`, `on`, `1_000` and `2024-01-01` stay strings
(YAML 1.1 read them as bools, numbers and dates); quote a value to keep it a string ('1e-3').

In a spec a single word names a param (`num_classes=10`); `dims.X` may bind a new dimension. In a
recipe a path starts at the top (`epochs=5`, `data.batch_size=32`); the keys the recipe format
declares (`steps`, `clip_grad`, `data.eval_batch_size`, ...) and the arguments of `data.args`,
`procedure` and `spec.set` (checked against what they configure) may be set without `+`; `lr` is
short for `optimizer.lr`.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

import yaml

from engine.compiler.ir import Diagnostic, Loc, LocDict, LocList, SpecError, located_error

SET, ADD, FORCE, DELETE = "set", "add", "force", "delete"
FORMS = ("write key=value (set a key that exists; a.b.c for nested keys), +key=value (add a new "
         "key), ++key=value (set or add), ~key (delete) or ~key=value (delete if it holds "
         "value); values are YAML, e.g. --set lr=1e-3 --set 'widths=[8, 16]'")

# the keys the recipe format declares, by the path of their mapping: absent from a recipe they
# hold their defaults, so `--set steps=5` needs no `+`. A snapshot of declared_keys(SCHEMA) of
# engine/train/recipe.py (the train layer sits above this one); a test keeps the two in step, and
# declare_recipe_keys(SCHEMA) replaces it with the schema's own.
RECIPE_KEYS: dict[str, tuple[str, ...]] = {
    "": ("name", "description", "extends", "spec", "data", "procedure", "loss", "aux_weights",
         "optimizer", "optimizers", "scheduler", "epochs", "steps", "clip_grad", "amp", "device",
         "precision", "compile", "channels_last", "accumulate", "early_stop", "stop_on_nonfinite",
         "log_every_steps", "ema", "seed", "eval", "checkpoint", "freeze", "weights", "output",
         "infer"),
    "spec": ("name", "set"),
    "data": ("dataset", "root", "args", "batch_size", "eval_batch_size", "workers", "transforms"),
    "data.transforms": ("train", "eval"),
    "procedure": ("name",),
    "loss": ("name",),
    "optimizer": ("name", "lr", "groups"),
    "scheduler": ("name",),
    "early_stop": ("metric", "patience", "mode", "min_delta"),
    "ema": ("decay",),
    "eval": ("every_epochs", "metrics", "sample_metrics", "samples", "split"),
    "checkpoint": ("every_steps", "every_epochs"),
    "infer": ("top_k", "optimize"),
}


def declared_keys(schema: dict, where: str = "") -> dict[str, tuple[str, ...]]:
    """{path of a mapping: the keys a JSON Schema declares there} ("" is the top)."""
    props = schema.get("properties") or {}
    found = {where: tuple(props)} if props else {}
    for key, sub in props.items():
        for option in [sub, *sub.get("anyOf", [])]:
            if isinstance(option, dict) and option.get("properties"):
                found.update(declared_keys(option, f"{where}.{key}".lstrip(".")))
    return found


def declare_recipe_keys(schema: dict) -> None:
    """Take the declared recipe keys from the recipe schema itself."""
    RECIPE_KEYS.clear()
    RECIPE_KEYS.update(declared_keys(schema))


# argument mappings whose keys the dataset, procedure or spec they configure checks (with a
# did-you-mean) once the recipe is merged: a new key there needs no `+`
RECIPE_OPEN = ("data.args", "procedure", "spec.set")
RECIPE_ALIASES = {"lr": "optimizer.lr"}  # for a recipe with one `optimizer:`

_KEY = re.compile(r"[^\s=.+~][^\s=.]*(\.[^\s=.]+)*")
_NO_VALUE = object()


class Override(NamedTuple):
    """A `--set` item: its value, where it was written (the command line), what it does
    (set, add, force or delete) and the key path without the `+`/`++`/`~`."""

    value: Any
    loc: Loc
    op: str = SET
    key: str = ""


# --- YAML 1.2 core schema on PyYAML (which reads YAML 1.1) --------------------------------------

class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's SafeLoader with the implicit types of the YAML 1.2 core schema."""

    yaml_implicit_resolvers: dict = {}


def _resolver(tag: str, pattern: str, first: str, empty: bool = False) -> None:
    Yaml12Loader.add_implicit_resolver(f"tag:yaml.org,2002:{tag}", re.compile(f"^(?:{pattern})$"),
                                       [*first, *([""] if empty else [])])


_resolver("bool", "true|True|TRUE|false|False|FALSE", "tTfF")
_resolver("null", "~|null|Null|NULL|", "~nN", empty=True)
# an integer before a float: the float pattern matches `12` too
_resolver("int", "[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789")
_resolver("float", r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
          r"|[-+]?(?:\.inf|\.Inf|\.INF)|\.nan|\.NaN|\.NAN", "-+.0123456789")


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    base = {"0o": 8, "0x": 16}.get(text[:2], 10)
    return int(text[2:] if base != 10 else text, base)


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    return math.nan if text == ".nan" else float(text)


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def read_value(text: str) -> Any:
    """One `--set` value as YAML 1.2 (core schema); raises yaml.YAMLError or ValueError."""
    return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 (a SafeLoader)


# --- parsing ------------------------------------------------------------------------------------

def parse_override(item: str) -> Override:
    """One `--set` string -> Override; a malformed one is a SpecError that shows the forms."""
    loc = Loc(f"--set {item}")

    def bad(message: str) -> SpecError:
        return located_error(f"cannot read override '{item}': {message}", loc, hint=FORMS)

    op, rest = _prefix(item)
    key, sep, raw = rest.partition("=")
    if not item.strip():
        raise bad("it is empty")
    if key[:1] in ("+", "~"):
        raise bad("a key takes one prefix: +, ++ or ~")
    if not key:
        raise bad("no key before '='" if sep else "no key")
    if not sep and op != DELETE:
        raise bad("no '=' (a value is needed; `~key` deletes)")
    if not _KEY.fullmatch(key):
        raise bad(f"'{key}' is not a key path (words joined by dots, no spaces)")
    if not sep:
        return Override(_NO_VALUE, loc, op, key)
    try:
        value = read_value(raw)
    except (yaml.YAMLError, ValueError) as err:
        raise bad(f"the value is not YAML: {' '.join(str(err).split())}") from None
    return Override(_plain(value), loc, op, key)


def _prefix(text: str) -> tuple[str, str]:
    """The operation a key's prefix names, and the rest of the text."""
    return ((DELETE, text[1:]) if text.startswith("~") else
            (FORCE, text[2:]) if text.startswith("++") else
            (ADD, text[1:]) if text.startswith("+") else (SET, text))


def parse_overrides(items: list[str]) -> dict[str, Override]:
    """`--set` strings -> {written key (with its prefix): Override}; a later one for the same
    key wins."""
    out = {}
    for item in items:
        override = parse_override(item)
        out[item.partition("=")[0]] = override
    return out


# --- applying -----------------------------------------------------------------------------------

def apply_overrides(doc: LocDict, overrides: dict[str, Any], recipe: bool = False) -> None:
    """Apply each override in order: a spec's single word names a param, a recipe's path starts
    at its top. Plain `{key: value}` entries (an API call, a recipe's `spec.set`) may carry the
    prefixes too."""
    for name, value in overrides.items():
        if not (isinstance(value, Override) and value.key):
            if isinstance(value, Override):
                value = value.value
            op, key = _prefix(str(name))
            match = _NO_VALUE if op == DELETE and value is None else _plain(value)
            value = Override(match, Loc(f"{name}={value}"), op, key)
        _apply(doc, value, recipe)


def _apply(doc: LocDict, ov: Override, recipe: bool) -> None:
    parts = _recipe_path(doc, ov) if recipe else _spec_path(doc, ov)
    target = doc
    for i, part in enumerate(parts[:-1]):
        nxt = target.get(part)
        if not isinstance(nxt, dict) and part not in target and (
                ov.op in (ADD, FORCE) or _declared(parts[:i + 1], recipe)):
            nxt = target[part] = LocDict(loc=ov.loc)
            _mark(target, part, ov.loc)
        if not isinstance(nxt, dict):
            raise SpecError([_missing_path(doc, target, parts, i, ov)])
        target = nxt
    leaf, path = parts[-1], ov.key  # as written: `n` for a spec's params.n, `lr` for optimizer.lr
    exists = leaf in target
    if ov.op == DELETE:
        if not exists:
            raise located_error(f"~{path}: there is no '{path}' to delete", ov.loc,
                                hint=_near(parts, target, recipe))
        if ov.value is not _NO_VALUE and target[leaf] != ov.value:
            raise located_error(f"~{path}={_show(ov.value)}: not deleted, '{path}' is "
                                f"{_show(target[leaf])}", ov.loc,
                                hint=f"write ~{path} to delete it whatever it holds")
        del target[leaf]
        if isinstance(target, LocDict):
            target.key_locs.pop(leaf, None)
            target.value_locs.pop(leaf, None)
        return
    if ov.op == ADD and exists:
        raise located_error(f"+{path}: '{path}' already exists (it is {_show(target[leaf])})",
                            ov.loc, hint=f"drop the '+' to change it: --set {path}=...; "
                                         f"++{path}=... sets it whether or not it exists")
    if ov.op == SET and not exists and not _declared(parts, recipe):
        near = _near(parts, target, recipe)
        raise located_error(f"override path '{path}' does not exist", ov.loc,
                            hint=f"{near}; " * bool(near) + f"to add it write +{path}=...")
    target[leaf] = ov.value
    _mark(target, leaf, ov.loc)


def _spec_path(doc: LocDict, ov: Override) -> list[str]:
    parts = ov.key.split(".")
    if len(parts) > 1:
        return parts
    params = doc.get("params") if isinstance(doc.get("params"), dict) else {}
    if ov.key not in params and ov.op in (SET, DELETE):
        from engine.blocks.registry import suggest
        near = suggest(ov.key, params) or f"its params: {', '.join(params) or 'none'}"
        add = f"+{ov.key}=... adds a param; " if ov.op == SET else ""
        raise located_error(f"the spec has no param '{ov.key}'", ov.loc,
                            hint=f"{near}; {add}other keys take a dotted path, e.g. graph.fc.out")
    return ["params", ov.key]


def _recipe_path(doc: LocDict, ov: Override) -> list[str]:
    if ov.key in RECIPE_ALIASES and ov.key not in doc:
        if isinstance(doc.get("optimizer"), dict):
            return RECIPE_ALIASES[ov.key].split(".")
        if isinstance(doc.get("optimizers"), dict):
            names = ", ".join(f"optimizers.{name}.lr" for name in doc["optimizers"])
            raise located_error(f"'{ov.key}' is short for optimizer.lr, but this recipe has "
                                "several optimizers", ov.loc, hint=f"set one of: {names}")
    return ov.key.split(".")


def _declared(parts: list[str], recipe: bool) -> bool:
    """May `parts` be set without `+` though the document lacks it?"""
    parent = ".".join(parts[:-1])
    if not recipe:
        return parts[0] == "dims" and len(parts) <= 2  # the dims: a spec binds by name
    return parent in RECIPE_OPEN or parts[-1] in RECIPE_KEYS.get(parent, ())


def _near(parts: list[str], target: Any, recipe: bool) -> str:
    """A did-you-mean for the last key of `parts` among its neighbours (and, in a recipe, the
    keys the format declares there)."""
    from engine.blocks.registry import suggest
    leaf, known = parts[-1], [str(k) for k in target] if isinstance(target, dict) else []
    declared = RECIPE_KEYS.get(".".join(parts[:-1]), ()) if recipe else ()
    return suggest(leaf, [*known, *declared]) or (f"it has: {', '.join(known)}" if known
                                                  else "it is empty")


def _missing_path(doc: LocDict, target: Any, parts: list[str], i: int, ov: Override) -> Diagnostic:
    from engine.blocks.registry import suggest
    where, part = ".".join(parts[:i + 1]), parts[i]
    nxt = target.get(part) if isinstance(target, dict) else None
    if isinstance(target, dict) and part in target:  # a value, not a mapping: say what it is
        rest = ".".join(parts[i + 1:])
        hint = (f"write {where}={{name: {nxt}, set: {{{rest.removeprefix('set.')}: ...}}}}"
                if where == "spec" and isinstance(nxt, str) else
                f"set {where} itself: {where}=...")
        return Diagnostic(f"override path '{'.'.join(parts)}': '{where}' is {_show(nxt)}, not a "
                          "mapping", ov.loc, hint=hint)
    known = list(target) if isinstance(target, dict) else []
    near = suggest(part, known) or (f"top-level params: {', '.join(doc.get('params', {}))}"
                                    if isinstance(doc.get("params"), dict) else
                                    f"it has: {', '.join(map(str, known))}")
    return Diagnostic(f"override path '{where}' does not exist", ov.loc,
                      hint=f"{near}; +{'.'.join(parts)}=... adds it with the mappings above it")


def _mark(target: Any, key: str, loc: Loc) -> None:
    if isinstance(target, LocDict):
        target.key_locs[key] = target.value_locs[key] = loc


def _show(value: Any) -> str:
    return yaml.safe_dump(_bare(value), default_flow_style=True, width=10**6).strip() \
        .removesuffix("...").strip()


def _bare(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _bare(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bare(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return LocDict({k: _plain(v) for k, v in value.items()})
    if isinstance(value, list):
        return LocList([_plain(v) for v in value])
    return value
