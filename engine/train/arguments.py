"""The arguments a recipe gives a registered optimizer, scheduler or loss, checked against the
callable's own signature before any training starts.

`optimizer: {name: adam, lr: 0.001, momentum: 0.9}` would reach `torch.optim.Adam(...,
momentum=0.9)` and fail after the data is loaded and the model built; here it is a located
error with a did-you-mean. Types come from the signature's annotations (or, without one, from
the default's type); a registered function can add lower bounds with `@at_least(every=1)`.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import torch

from engine.blocks.registry import suggest
from engine.compiler.ir import Diagnostic, LocDict


def at_least(**minimums: float) -> Callable:
    """Declare lower bounds of a registered callable's arguments (`@at_least(every=1)`)."""
    def mark(fn: Callable) -> Callable:
        fn.minimums = minimums
        return fn
    return mark


def check_arguments(fn: Callable, given: LocDict, where: str, what: str,
                    skip: tuple[str, ...] = ()) -> Iterator[Diagnostic]:
    """Diagnostics for `given` (the recipe mapping; its `name` and the keys in `skip` are not
    arguments) called as `fn(**given)`; `what` names it in messages ("optimizer 'adam'")."""
    params = _parameters(fn, skip)
    if params is None:  # takes **kwargs: nothing to check against
        return
    for key, value in given.items():
        if key == "name" or key in skip:
            continue
        if key not in params:
            yield Diagnostic(f"{what} has no argument '{key}'", given.key_loc(key), f"{where}.{key}",
                             suggest(str(key), list(params)) or f"its arguments: {', '.join(params)}")
            continue
        problem = _value_problem(params[key], value)
        if problem:
            yield Diagnostic(f"{where}.{key} is {value!r}: {problem}", given.value_loc(key),
                             f"{where}.{key}", f"{key} of {what} is {_describe(params[key])}")
    missing = [k for k, p in params.items() if p.default is p.empty and k not in given]
    if missing:
        yield Diagnostic(f"{what} needs {', '.join(missing)}", given.loc, where,
                         f"write {missing[0]}: ... beside name:")


@cache
def _parameters(fn: Callable, skip: tuple[str, ...]) -> dict[str, inspect.Parameter] | None:
    try:
        signature = inspect.signature(fn, eval_str=True)
    except (TypeError, ValueError, NameError):
        return None
    params = signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return {k: p for k, p in params.items() if k not in skip and k != "self"
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _kinds(param: inspect.Parameter) -> set[str] | None:
    """What a recipe may write for the parameter ("int", "number", "bool", "str", "null",
    "list"), or None where anything goes (no annotation and no default to read a type from)."""
    annotation = param.annotation
    if annotation is param.empty:
        default = param.default
        if default is param.empty or default is None:
            return None
        annotation = type(default)
    members = typing.get_args(annotation) \
        if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    kinds: set[str] = set()
    for member in members:
        origin = typing.get_origin(member) or member
        kind = {bool: "bool", int: "int", float: "number", str: "str", type(None): "null",
                tuple: "list", list: "list", torch.Tensor: "tensor"}.get(origin)
        if origin is typing.Literal:
            kinds.update(f"={choice}" for choice in typing.get_args(member))
        elif kind is None:
            return None  # a type a recipe cannot spell (a callable, a generator): not checked
        else:
            kinds.add(kind)
    if "tensor" in kinds:  # lr: float | Tensor is a number; weight: Tensor | None a list
        kinds.discard("tensor")
        kinds.add("list" if "number" not in kinds else "number")
    return kinds


def _value_problem(param: inspect.Parameter, value: Any) -> str | None:
    kinds = _kinds(param)
    return f"not {_describe(param)}" if kinds is not None and not _fits(value, kinds) else None


def _fits(value: Any, kinds: set[str]) -> bool:
    if isinstance(value, bool):
        return "bool" in kinds
    if isinstance(value, int):
        return bool(kinds & {"int", "number"})
    if isinstance(value, float):
        return "number" in kinds  # inf and nan: check_finite says so, once
    if isinstance(value, str):
        return "str" in kinds or f"={value}" in kinds
    if value is None:
        return "null" in kinds
    if isinstance(value, list):
        return "list" in kinds and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                       for v in value)
    return False


def _describe(param: inspect.Parameter) -> str:
    kinds = _kinds(param) or set()
    words = {"bool": "true or false", "int": "an integer", "number": "a number", "str": "a string",
             "null": "null", "list": "a list of numbers"}
    said = [words[k] for k in ("bool", "int", "number", "str", "list", "null") if k in kinds]
    said += [repr(k[1:]) for k in sorted(kinds) if k.startswith("=")]
    return " or ".join(said) or "any value"


def check_minimums(fn: Callable, given: LocDict, where: str, what: str) -> Iterator[Diagnostic]:
    """The bounds declared with `@at_least`."""
    for key, low in (getattr(fn, "minimums", None) or {}).items():
        value = given.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < low:
            yield Diagnostic(f"{where}.{key} is {value}, below {low}", given.value_loc(key),
                             f"{where}.{key}", f"{what} needs {key} >= {low}")


def argument_problems(fn: Callable, given: Any, where: str, what: str,
                      skip: tuple[str, ...] = ()) -> list[Diagnostic]:
    """Every argument problem of `fn(**given)`: names, types and declared bounds."""
    if not isinstance(given, LocDict):
        return []
    return [*check_arguments(fn, given, where, what, skip), *check_minimums(fn, given, where, what)]
