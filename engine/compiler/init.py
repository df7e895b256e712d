"""Parameter initialisation after materialisation: each module once, by the spec's rules.

A spec's `init:` maps an op to rules for its parameters, e.g.
`conv: {weight: {kaiming_normal: {mode: fan_out, nonlinearity: relu}}, bias: zeros}`;
a node's own `init:` overrides it. Modules whose every parameter is covered by a rule skip
their default `reset_parameters`, so nothing is initialised twice.
"""

from __future__ import annotations

import inspect
import math
import typing
from functools import cache
from typing import Any

import torch
from torch import nn

from engine.blocks.registry import suggest
from engine.compiler.walk import nodes_by_path

INITS = {
    "zeros": nn.init.zeros_, "ones": nn.init.ones_, "constant": nn.init.constant_,
    "normal": nn.init.normal_, "trunc_normal": nn.init.trunc_normal_, "uniform": nn.init.uniform_,
    "kaiming_normal": nn.init.kaiming_normal_, "kaiming_uniform": nn.init.kaiming_uniform_,
    "xavier_normal": nn.init.xavier_normal_, "xavier_uniform": nn.init.xavier_uniform_,
    "orthogonal": nn.init.orthogonal_,
}


def initialize(root: nn.Module, shaped) -> None:
    rules = _rules_by_module(shaped)
    with torch.no_grad():
        # Descendants before ancestors, as at construction: a layer's own reset (e.g.
        # MultiheadAttention zeroing out_proj.bias) must come after its children's.
        for module in reversed(list(root.modules())):
            own = rules.get(id(module), {})
            names = [n for n, _ in module.named_parameters(recurse=False)]
            covered = names and all(n in own for n in names) and not list(
                module.buffers(recurse=False))
            if hasattr(module, "reset_parameters") and not covered:
                module.reset_parameters()
            for name, rule in own.items():
                if getattr(module, name, None) is not None:
                    apply_rule(getattr(module, name), rule)


def _rules_by_module(shaped) -> dict[int, dict[str, Any]]:
    spec_rules = shaped.spec.init or {}
    nodes = nodes_by_path(shaped.spec)
    out: dict[int, dict[str, Any]] = {}
    for path, result in shaped.nodes.items():
        node = nodes.get(path)
        if result.module is None or node is None or node.kind == "param":
            continue
        merged = {**(spec_rules.get(node.op) or {}), **(node.init or {})}
        if merged:
            out.setdefault(id(result.module), {}).update(merged)
    return out


def rule_problem(rule: Any) -> tuple[str, str] | None:
    """(message, hint) when `rule` is not one `apply_rule` can apply, None when it is: checked at
    validation, so that `init:` typos are located errors rather than failures at build."""
    schemes = ", ".join(INITS)
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        return None if math.isfinite(rule) else (f"init {rule} is not a finite number",
                                                 "write a finite constant, e.g. 0.0")
    if isinstance(rule, str) or (isinstance(rule, dict) and len(rule) == 1):
        name, kwargs = (rule, {}) if isinstance(rule, str) else next(iter(rule.items()))
        kwargs = {} if kwargs is None else kwargs  # `{zeros: }` reads as no arguments
    else:
        return (f"init rule {rule!r} is not a scheme",
                f"write a number, a scheme name ({schemes}) or {{scheme: {{args}}}}")
    if name not in INITS:
        return f"unknown init scheme {name!r}", suggest(str(name), list(INITS)) or f"known: {schemes}"
    if not isinstance(kwargs, dict):
        return f"init scheme '{name}' takes a mapping of arguments", f"write {{{name}: {{...}}}}"
    return _arguments_problem(name, kwargs)


@cache
def _signature(name: str) -> dict[str, inspect.Parameter]:
    """The scheme's own arguments (not the tensor, not the random generator)."""
    params = inspect.signature(INITS[name], eval_str=True).parameters
    return {k: p for k, p in params.items() if k not in ("tensor", "generator")}


def _arguments_problem(name: str, kwargs: dict) -> tuple[str, str] | None:
    params = _signature(name)
    for key, value in kwargs.items():
        if key not in params:
                return (f"init scheme '{name}' has no argument {key!r}",
                    suggest(str(key), list(params)) or f"its arguments: {', '.join(params) or 'none'}")
        choices = typing.get_args(params[key].annotation)
        if typing.get_origin(params[key].annotation) is typing.Literal:
            if value not in choices:
                return (f"init {name}.{key} is {value!r}",
                        f"one of: {', '.join(map(str, choices))}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value):
            return f"init {name}.{key} is {value!r}, not a finite number", f"e.g. {key}: 0.02"
    missing = [k for k, p in params.items() if p.default is p.empty and k not in kwargs]
    if missing:
        return f"init scheme '{name}' needs {', '.join(missing)}", f"write {{{name}: {{{missing[0]}: 0.0}}}}"
    return None


def apply_rule(tensor: torch.Tensor, rule: Any) -> None:
    """A rule is a name (`zeros`), a number (constant fill) or `{name: {kwargs}}`."""
    if isinstance(rule, bool):
        raise ValueError(f"init rule {rule!r} is not a scheme")
    if isinstance(rule, (int, float)):
        tensor.fill_(float(rule))
    elif isinstance(rule, str):
        INITS[rule](tensor)
    else:
        (name, kwargs), = rule.items()
        INITS[name](tensor, **(kwargs or {}))
