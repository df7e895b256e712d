"""Which graphs become generated classes: each network and every spec block instance, in a
tree; a `seq:`, `repeat` or inline `graph:` that is a plain chain is written inside its owner
as an nn.Sequential instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.compiler.ir import Graph, Node, Ref, Spec
from engine.views.codegen.ir import Inst
from engine.views.codegen.literals import camel

_TYPE_NAMES = {"int", "float", "bool", "str", "list"}


@dataclass
class Tree:
    """The instances of one file, in model order (`Inst.order`)."""

    tops: list[Inst] = field(default_factory=list)  # the networks
    insts: list[Inst] = field(default_factory=list)
    by_path: dict[str, Inst] = field(default_factory=dict)  # spec block instances, by node path

    def levels(self) -> list[list[Inst]]:
        """The instances by height, leaves first: a class's parameters are then known before
        the classes that call it are written."""
        heights = sorted({i.height for i in self.insts})
        return [[i for i in self.insts if i.height == h] for h in heights]


def collect(spec: Spec) -> Tree:
    """The instances of every network of the spec, their heights set."""
    tree = Tree()
    for net, graph in spec.networks.items():
        top = Inst(None, graph, net if spec.multi else "", camel(net), len(tree.insts), net)
        tree.insts.append(top)
        tree.tops.append(top)
        _collect(spec, tree, top, graph)
    for top in tree.tops:
        _set_heights(top)
    return tree


def _collect(spec: Spec, tree: Tree, owner: Inst, graph: Graph) -> None:
    for node in graph.nodes:
        if node.kind != "graph" or node.shared is not None or node.body is None:
            continue
        if sequential(spec, node):  # written inside its owner
            _collect(spec, tree, owner, node.body)
            continue
        block = block_args(spec, node)
        stem = node.op if block is not None or node.name.isdigit() else node.name
        inst = Inst(node, node.body, node.path, camel(stem), len(tree.insts), block_args=block)
        tree.insts.append(inst)
        tree.by_path[node.path] = inst
        owner.children.append(inst)
        _collect(spec, tree, inst, node.body)


def _set_heights(inst: Inst) -> int:
    inst.height = 1 + max((_set_heights(c) for c in inst.children), default=-1)
    return inst.height


def sequential(spec: Spec, node: Node) -> bool:
    """A `seq:`, `repeat` or inline `graph:` that is a plain chain becomes an nn.Sequential
    (a spec block stays a class of its own, even when it is a chain)."""
    return node.body is not None and block_args(spec, node) is None and _chain(node.body)


def _chain(graph: Graph) -> bool:
    """One input, one output, and each node fed by the one before it only."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1 or not graph.nodes:
        return False
    prev = next(iter(graph.inputs))
    for node in graph.nodes:
        if node.kind not in ("prim", "graph") or node.shared is not None:
            return False
        if node.inputs != [Ref(prev)]:
            return False
        prev = node.name
    return next(iter(graph.outputs.values())) == Ref(prev)


def block_args(spec: Spec, node: Node) -> dict | None:
    """A spec block instance's params: its arguments, and the literal defaults; None for any
    other node."""
    blocks = (spec.doc or {}).get("blocks") or {}
    if node.repeat or node.op not in blocks:
        return None
    out = {}
    for name, decl in _declared(spec, node.op).items():
        if name in node.args:
            out[name] = node.args[name]
        elif _literal_default(decl):
            out[name] = decl
    return out


def literal_defaults(spec: Spec, op: str) -> dict[str, Any]:
    """The params of spec block `op` declared with a plain default, and those defaults."""
    return {k: v for k, v in _declared(spec, op).items() if _literal_default(v)}


def _declared(spec: Spec, op: str) -> dict:
    blocks = (spec.doc or {}).get("blocks") or {}
    block = blocks.get(op) if isinstance(blocks, dict) else None
    decls = block.get("params") if isinstance(block, dict) else None
    return decls if isinstance(decls, dict) else {}


def _literal_default(decl: Any) -> bool:
    """A block param declared with a plain default (not `int`, not an expression)."""
    if isinstance(decl, bool) or isinstance(decl, (int, float)):
        return True
    return isinstance(decl, str) and "$" not in decl and decl not in _TYPE_NAMES
