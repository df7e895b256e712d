"""One instance's class body: the __init__ statements that make its layers, the statements
after them (init, spectral norm, freeze, tie) and its forward, with every literal left as a hole
so that instances of the same structure can share one class."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from engine.compiler.build import graph_variables, return_statement
from engine.compiler.ir import Graph, Node, Ref, Shaped
from engine.compiler.liveness import Step, frees, inplace_expression, inplace_operands, with_frees
from engine.views.codegen.inits import freeze, init_loops, init_statements, parameter_init, spectral_norm
from engine.views.codegen.ir import (
    LOOP_VAR,
    REQUIRED,
    Body,
    Call,
    Cat,
    ClassRef,
    Inst,
    Kw,
    Lit,
    Literals,
    Loop,
    Pos,
    Seq,
    Statement,
    Text,
    Token,
)
from engine.views.codegen.layers import Layers, buffer_line, parameter_line
from engine.views.codegen.literals import GLOBALS, child, is_attr, literal, variable
from engine.views.codegen.tree import Tree, sequential


@dataclass
class _Draft:
    """A class body while it is written."""

    scope: str  # the path its node names are relative to
    lits: Literals = field(default_factory=Literals)
    lines: list[Token] = field(default_factory=list)
    inits: list[Statement] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    alias: dict[str, str] = field(default_factory=dict)  # parameters and pass-throughs, by name
    names: dict[str, str] = field(default_factory=dict)  # input and node name -> its variable
    steps: list[Step] = field(default_factory=list)  # what each forward line assigns and reads
    reads: dict[str, frozenset[str]] = field(default_factory=dict)  # name -> variables it reads
    inplace: dict[str, int] = field(default_factory=dict)  # node -> operand it overwrites


@dataclass
class BodyWriter:
    """Writes the class bodies of one file's instances (children's classes grouped first)."""

    shaped: Shaped
    tree: Tree
    layers: Layers
    attention: set[int] = field(default_factory=set)  # ids of modules called (q, k, v)[0]

    def body(self, inst: Inst) -> Body:
        """The class body of `inst`. Its child instances must be in classes already: their
        classes' signatures decide the arguments written for them."""
        graph = inst.graph
        d = _Draft(graph.nodes[0].path.rpartition(".")[0] if graph.nodes else inst.path,
                   names=graph_variables(graph, GLOBALS),
                   inplace=inplace_operands(graph, self.shaped))
        d.reads = {name: frozenset([d.names[name]]) for name in graph.inputs}
        for node in graph.nodes:
            self._node(d, node)
        if inst.node is None:
            d.inits += _ties(self.shaped, graph)
        forward = self._forward(d, graph, top=inst.node is None)
        return Body(tuple(d.lines), tuple(d.inits), forward, tuple(d.lits.holes), d.lits.values)

    def _node(self, d: _Draft, node: Node) -> None:
        refs = [self._ref(r, d) for r in node.inputs]
        if node.kind == "pass":
            d.alias[node.name] = refs[0]
            d.reads[node.name] = _reads(d, node)  # `drop` written as `conv2`: reads conv2
            return
        if node.kind == "param":
            d.reads[node.name] = frozenset()  # `self.weight`: no local variable
            self._parameter(d, node)
            return
        d.reads[node.name] = frozenset([d.names[node.name]])
        if node.name in d.inplace:  # `add = bn3.add_(downsample)`
            module = self.shaped.nodes[node.path].module
            _line(d, node, inplace_expression(module, refs, d.inplace[node.name]))
            return
        if node.kind == "prim" and self._inline(d, node, refs):
            return
        if node.kind == "prim":
            self._prim(d, node, refs)
        else:
            self._graph(d, node, refs)
        if node.freeze and node.shared is None:
            d.inits.append(freeze(child("self", node.name)))

    def _parameter(self, d: _Draft, node: Node) -> None:
        attr = child("self", node.name)
        d.alias[node.name] = attr
        module = self.shaped.nodes[node.path].module
        if not isinstance(module.weight, nn.Parameter):  # a `buffer` node: its value, written out
            d.lines.append(buffer_line(node, module, d.lits))
            return
        d.lines.append(parameter_line(node, module.weight, d.lits))
        d.inits += parameter_init(node, d.lits)
        if node.freeze:
            d.inits.append(freeze(attr))

    def _inline(self, d: _Draft, node: Node, refs: list[str]) -> bool:
        expr = self.layers.inline(node, self.shaped.nodes[node.path].module, refs)
        if expr is not None:
            _line(d, node, expr)
        return expr is not None

    def _prim(self, d: _Draft, node: Node, refs: list[str]) -> None:
        module = self.shaped.nodes[node.path].module
        if node.shared is None:
            self._layer(d, node, module)
        call = child("self", (node.shared or node).name)
        # checked on the module, not the node: a shared node calls its target's attention
        if id(module) in self.attention:  # (q, k, v) -> out, as torchvision
            q = refs[0]
            k = refs[1] if len(refs) > 1 else q
            v = refs[2] if len(refs) > 2 else k
            _line(d, node, f"{call}({q}, {k}, {v}, need_weights=False)[0]")
        else:
            _line(d, node, f"{call}({', '.join(refs)})")

    def _layer(self, d: _Draft, node: Node, module: nn.Module) -> None:
        """A primitive block's module as an attribute, with its init and spectral norm."""
        attr = child("self", node.name)
        made = self.layers.constructor(node, module, d.lits, node.name, in_class=True)
        if made.attention:
            self.attention.add(id(module))
        d.lines.append(_assign(node.name, made.call))
        d.inits += init_statements(self.shaped.spec, node, module, attr, d.lits, node.name)
        d.inits += spectral_norm(node, attr)

    def _graph(self, d: _Draft, node: Node, refs: list[str]) -> None:
        call = child("self", (node.shared or node).name)
        _line(d, node, f"{call}({', '.join(refs)})")
        if node.shared is None:
            d.lines.append(_assign(node.name, self._graph_tok(d, node, child("self", node.name),
                                                              node.name)))

    def _graph_tok(self, d: _Draft, node: Node, expr: str, owner: str) -> Token:
        """A graph child: an nn.Sequential written out, or a call of its generated class."""
        if sequential(self.shaped.spec, node):
            return self._sequential(d, node, expr, owner)
        inst = self.tree.by_path[node.path]
        args = []
        for p in inst.group.signature():
            hole = d.lits.hole(inst.param_value(p), p.name, owner, p.default)
            args.append(Pos(Lit(hole)) if p.default is REQUIRED else Kw(p.name, hole))
        return Call(ClassRef(inst.group.gid), tuple(args))

    def _sequential(self, d: _Draft, node: Node, expr: str, owner: str) -> Seq:
        positional = _positional(node.body)
        loops = init_loops(node.body, self.shaped)
        for torch_cls, children in loops.items():
            first = children[0]
            module = self.shaped.nodes[first.path].module
            body = init_statements(self.shaped.spec, first, module, LOOP_VAR, d.lits, owner)
            d.inits.append(Statement("init", Loop(expr, f"nn.{torch_cls.__name__}",
                                                  tuple(s.tok for s in body))))
        # by identity: the loops' layers get no init statements of their own
        looped = {id(c) for children in loops.values() for c in children}
        items = tuple((c.name, self._item(d, c, child(expr, c.name, indexed=positional),
                                          f"{owner}_{c.name}", id(c) in looped))
                      for c in node.body.nodes)
        return Seq(positional, items)

    def _item(self, d: _Draft, node: Node, expr: str, owner: str, looped: bool) -> Token:
        """One layer of an nn.Sequential."""
        if node.kind == "prim":
            module = self.shaped.nodes[node.path].module
            tok = self.layers.constructor(node, module, d.lits, owner, in_class=False).call
            if not looped:
                d.inits += init_statements(self.shaped.spec, node, module, expr, d.lits, owner)
            d.inits += spectral_norm(node, expr)
        else:
            tok = self._graph_tok(d, node, expr, owner)
        if node.freeze:
            d.inits.append(freeze(expr))
        return tok

    def _ref(self, ref: Ref, d: _Draft) -> str:
        """A reference as Python: `name`, or `name[k]` for output k of a multi-output node."""
        base = d.alias.get(ref.node) or d.names.get(ref.node) or variable(ref.node)
        source = self.shaped.nodes.get(f"{d.scope}.{ref.node}" if d.scope else ref.node)
        if ref.output is None or (source is not None and len(source.outputs) == 1):
            return base
        names = source.output_names if source else ()
        index = names.index(ref.output) if ref.output in names else int(ref.output)
        return f"{base}[{index}]"

    def _forward(self, d: _Draft, graph: Graph, top: bool) -> str:
        params = ", ".join(["self", *(d.names[n] for n in graph.inputs)])
        outs = {name: self._ref(ref, d) for name, ref in graph.outputs.items()}
        returned = set().union(*(d.reads.get(ref.node, ()) for ref in graph.outputs.values()))
        lines = with_frees(d.forward, frees(d.steps, returned))
        body = "\n".join(f"        {line}" for line in [*lines, return_statement(outs, top)])
        return f"    def forward({params}):\n{body}\n"


def _line(d: _Draft, node: Node, expr: str) -> None:
    """The forward line `variable = expr` of `node`, with what it assigns and reads."""
    d.forward.append(f"{d.names[node.name]} = {expr}")
    d.steps.append(Step(d.names[node.name], _reads(d, node)))


def _reads(d: _Draft, node: Node) -> frozenset[str]:
    """The local variables `node`'s inputs are written with (through pass-throughs)."""
    return frozenset().union(*(d.reads.get(r.node, ()) for r in node.inputs))


def _assign(name: str, tok: Token) -> Token:
    if is_attr(name):
        return Cat((Text(f"self.{name} = "), tok))
    return Cat((Text(f"self.add_module({literal(name)}, "), tok, Text(")")))


def _positional(graph: Graph) -> bool:
    """Children named 0, 1, 2...: an nn.Sequential without names, indexed `seq[0]`."""
    return [n.name for n in graph.nodes] == [str(i) for i in range(len(graph.nodes))]


# ---- `tie:` -------------------------------------------------------------------------------------

def _ties(shaped: Shaped, graph: Graph) -> list[Statement]:
    """`tie:` at the network's top: one Parameter under two names, after all init."""
    out: list[Statement] = []
    _walk_ties(shaped, graph, graph, "self", False, out)
    return out


def _walk_ties(shaped: Shaped, top: Graph, g: Graph, expr: str, indexed: bool,
               out: list[Statement]) -> None:
    for node in g.nodes:
        here = child(expr, node.name, indexed=indexed)
        for pname, target in node.tie.items():
            owner, _, tname = str(target).rpartition(".")
            out.append(Statement("tie", Text(f"{here}.{pname} = "
                                              f"{_path_expr(shaped, top, owner)}.{tname}")))
        if node.body is not None and node.shared is None:
            inner = sequential(shaped.spec, node) and _positional(node.body)
            _walk_ties(shaped, top, node.body, here, inner, out)


def _path_expr(shaped: Shaped, graph: Graph, path: str) -> str:
    """`self.layer1[0].conv1` for the node path `layer1.0.conv1` of a network."""
    expr, g, indexed = "self", graph, False
    for seg in path.split(".") if path else []:
        node = g.node(seg)
        expr = child(expr, seg, indexed=indexed)
        if node is None or node.body is None:
            break
        g = node.body
        indexed = sequential(shaped.spec, node) and _positional(g)
    return expr
