"""Parameter initialisation after materialisation: each module once, by the spec's rules.

A spec's `init:` maps an op to rules for its parameters, e.g.
`conv: {weight: {kaiming_normal: {mode: fan_out, nonlinearity: relu}}, bias: zeros}`;
a node's own `init:` overrides it. Modules whose every parameter is covered by a rule skip
their default `reset_parameters`, so nothing is initialised twice.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

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
