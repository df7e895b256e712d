"""The statements after the layers of an __init__: the spec's `init:` rules as nn.init calls (one
loop where a Sequential's layers of a type share them), spectral norm and freezing."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import engine.views.codegen.layers as layers  # LAYERS looked up at call time: tests empty it
from engine.compiler.init import INITS
from engine.compiler.ir import Graph, Node, Shaped, Spec
from engine.views.codegen.ir import Call, Kw, Lit, Literals, Pos, Statement, Text, codegen_error
from engine.views.codegen.literals import child


def rules_of(spec: Spec, node: Node) -> dict[str, Any]:
    """The spec's `init:` rules for this node's op, overridden by the node's own."""
    return {**((spec.init or {}).get(node.op) or {}), **(node.init or {})}


def init_statements(spec: Spec, node: Node, module: nn.Module, expr: str, lits: Literals,
                    owner: str) -> list[Statement]:
    """The init rules of the module at `expr`, for the tensors it has."""
    return [Statement("init", rule_call(f"{expr}.{pname}", rule, lits, owner, node))
            for pname, rule in rules_of(spec, node).items()
            if isinstance(getattr(module, pname, None), torch.Tensor)]


def parameter_init(node: Node, lits: Literals) -> list[Statement]:
    """A learned tensor's init rule: none for zeros, which is how it is created."""
    rule = node.init if node.init != {} else "zeros"
    if rule == "zeros" or (type(rule) in (int, float) and rule == 0):
        return []
    return [Statement("init", rule_call(child("self", node.name), rule, lits, node.name, node))]


def rule_call(target: str, rule: Any, lits: Literals, owner: str, node: Node) -> Call:
    """An init rule (`zeros`, a number, `{name: {kwargs}}`) as an nn.init call on `target`."""
    if isinstance(rule, bool):
        raise codegen_error(node, f"init rule {rule!r} is not a scheme")
    if isinstance(rule, (int, float)):
        return Call(Text("nn.init.constant_"),
                    (Pos(Text(target)), Pos(Lit(lits.hole(rule, "init_value", owner)))))
    if isinstance(rule, str):
        return Call(Text(f"nn.init.{INITS[rule].__name__}"), (Pos(Text(target)),))
    (name, kwargs), = rule.items()
    args = tuple(Kw(k, lits.hole(v, k, owner)) for k, v in (kwargs or {}).items())
    return Call(Text(f"nn.init.{INITS[name].__name__}"), (Pos(Text(target)), *args))


def init_loops(body: Graph, shaped: Shaped) -> dict[type, list[Node]]:
    """Torch layer types whose every instance among a Sequential's children gets the same
    init rules (three or more of them): written `for layer in ...: if isinstance(...)`."""
    prims = [c for c in body.nodes if c.kind == "prim"]
    rules = {id(c): repr(r) if (r := rules_of(shaped.spec, c)) else "" for c in prims}
    out = {}
    for torch_cls in layers.LAYERS:
        members = [c for c in prims if isinstance(shaped.nodes[c.path].module, torch_cls)]
        kinds = {rules[id(c)] for c in members}
        if len(members) >= 3 and len(kinds) == 1 and "" not in kinds:
            out[torch_cls] = members
    return out


def spectral_norm(node: Node, expr: str) -> list[Statement]:
    if not node.spectral_norm:
        return []
    return [Statement("spectral_norm", Text(f"nn.utils.parametrizations.spectral_norm({expr})"))]


def freeze(expr: str) -> Statement:
    return Statement("freeze", Text(f"{expr}.requires_grad_(False)"))
