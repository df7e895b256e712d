"""The tree of generated classes: one class body per instance, instances sharing a
structure deduplicated into one class, and what varies between them made its parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.compiler.build import return_statement, var
from engine.compiler.ir import Graph, Node, Ref
from engine.views.codegen.literals import (
    _GLOBALS,
    _MISSING,
    _REQ,
    _Builder,
    _camel,
    _child,
    _is_attr,
    _lit,
    _same,
    _vkey,
)

# ---- instances and classes ------------------------------------------------------------------

@dataclass
class _Param:
    """A constructor parameter of a generated class."""

    name: str
    holes: list[int]  # the literals it stands for (none: a block param used in `width * 4`)
    default: Any = _REQ
    block_param: str | None = None


@dataclass
class _Inst:
    """A graph that becomes an instance of a generated class."""

    node: Node | None  # None for a network
    graph: Graph
    path: str
    base: str  # class name stem
    order: int  # position in the model, for naming and ordering classes
    network: str | None = None
    children: list[_Inst] = field(default_factory=list)  # class instances directly inside
    block_args: dict | None = None  # a spec block instance's params
    height: int = 0
    values: list = field(default_factory=list)  # its literals, by hole
    group: _Group | None = None

    def param_value(self, p: _Param) -> Any:
        return self.values[p.holes[0]] if p.holes else self.block_args[p.block_param]


@dataclass(eq=False)
class _Group:
    """One generated class: the instances sharing a structure, and what varies between them."""

    gid: int
    base: str
    key: tuple
    lines: tuple  # __init__ statements (tokens)
    inits: tuple  # init, tie and freeze statements (tokens)
    forward: str
    holes: tuple
    insts: list[_Inst] = field(default_factory=list)
    params: list[_Param] = field(default_factory=list)
    text: dict[int, str] = field(default_factory=dict)  # hole -> literal, parameter or expression
    omitted: set[int] = field(default_factory=set)  # keyword holes left at their default
    name: str = ""

    def signature(self) -> list[_Param]:
        """Required parameters first, then those with defaults, each in order of first use."""
        return ([p for p in self.params if p.default is _REQ]
                + [p for p in self.params if p.default is not _REQ])


class _Classes:
    """The _Codegen part that collects instances, renders their bodies and groups them."""

    # -- the tree of classes --
    def _collect(self, owner: _Inst, graph: Graph) -> None:
        for node in graph.nodes:
            if node.kind != "graph" or node.shared is not None or node.body is None:
                continue
            if self._sequential(node):  # written inside its owner
                self._collect(owner, node.body)
                continue
            block = self._block_args(node)
            stem = node.op if block is not None or node.name.isdigit() else node.name
            inst = _Inst(node, node.body, node.path, _camel(stem), len(self.insts),
                         block_args=block)
            self.insts.append(inst)
            self.by_path[node.path] = inst
            owner.children.append(inst)
            self._collect(inst, node.body)

    def _sequential(self, node: Node) -> bool:
        """A `seq:`, `repeat` or inline `graph:` that is a plain chain becomes an nn.Sequential
        (a spec block stays a class of its own, even when it is a chain)."""
        if id(node) not in self._chains:
            self._chains[id(node)] = (node.body is not None and self._block_args(node) is None
                                      and _chain(node.body))
        return self._chains[id(node)]

    def _block_decls(self, op: str) -> dict:
        blocks = (self.spec.doc or {}).get("blocks") or {}
        block = blocks.get(op) if isinstance(blocks, dict) else None
        decls = block.get("params") if isinstance(block, dict) else None
        return decls if isinstance(decls, dict) else {}

    def _block_args(self, node: Node) -> dict | None:
        """A spec block instance's params: its arguments, and the literal defaults."""
        blocks = (self.spec.doc or {}).get("blocks") or {}
        if node.repeat or node.op not in blocks:
            return None
        out = {}
        for name, decl in self._block_decls(node.op).items():
            if name in node.args:
                out[name] = node.args[name]
            elif _literal_default(decl):
                out[name] = decl
        return out

    # -- one instance: its class body, with its literals as holes --
    def _render(self, inst: _Inst) -> _Group:
        b = _Builder()
        lines: list[tuple] = []
        inits: list[tuple] = []
        fwd: list[str] = []
        alias: dict[str, str] = {}  # parameters and pass-throughs, referred to directly
        graph = inst.graph
        scope = graph.nodes[0].path.rpartition(".")[0] if graph.nodes else inst.path
        for node in graph.nodes:
            out = self._var(node.name)
            refs = [self._ref(r, scope, alias) for r in node.inputs]
            attr = _child("self", node.name)
            if node.kind == "pass":
                alias[node.name] = refs[0]
                continue
            if node.kind == "param":
                alias[node.name] = attr
                lines.append(self._param_line(node, b, inits))
                if node.freeze:
                    inits.append(("freeze", ("t", f"{attr}.requires_grad_(False)")))
                continue
            call = _child("self", (node.shared or node).name)
            if node.kind == "prim":
                module = self.shaped.nodes[node.path].module
                expr = self._inline(node, module, refs)
                if expr is not None:
                    fwd.append(f"{out} = {expr}")
                    continue
                if node.shared is None:
                    lines.append(_assign(node.name, self._module_tok(node, module, b, node.name,
                                                                     "class")))
                    inits += self._init_toks(node, module, attr, b, node.name)
                    inits += _spectral_norm_toks(node, attr)
                if id(module) in self._plain_attention:  # (q, k, v) -> out, as torchvision
                    q = refs[0]
                    k = refs[1] if len(refs) > 1 else q
                    v = refs[2] if len(refs) > 2 else k
                    fwd.append(f"{out} = {call}({q}, {k}, {v}, need_weights=False)[0]")
                else:
                    fwd.append(f"{out} = {call}({', '.join(refs)})")
            else:
                fwd.append(f"{out} = {call}({', '.join(refs)})")
                if node.shared is None:
                    lines.append(_assign(node.name, self._graph_tok(node, attr, b, inits,
                                                                    node.name)))
            if node.freeze and node.shared is None:
                inits.append(("freeze", ("t", f"{attr}.requires_grad_(False)")))
        if inst.node is None:
            inits += self._tie_toks(graph)
        forward = self._forward(graph, fwd, scope, alias, top=inst.node is None)
        key = (("network", inst.network) if inst.node is None else inst.base, tuple(lines),
               tuple(inits), forward, repr(b.holes))  # repr: a list default is unhashable
        group = self._by_key.get(key)
        if group is None:
            group = _Group(len(self.groups), inst.base, key, tuple(lines), tuple(inits), forward,
                           tuple(b.holes))
            self.groups.append(group)
            self._by_key[key] = group
        group.insts.append(inst)
        inst.group, inst.values = group, b.values
        return group

    def _var(self, name: str) -> str:
        out = var(name)
        return f"{out}_" if out in _GLOBALS else out

    def _ref(self, ref: Ref, scope: str, alias: dict[str, str]) -> str:
        """A reference as Python: `name`, or `name[k]` for output k of a multi-output node."""
        base = alias.get(ref.node) or self._var(ref.node)
        source = self.shaped.nodes.get(f"{scope}.{ref.node}" if scope else ref.node)
        if ref.output is None or (source is not None and len(source.outputs) == 1):
            return base
        names = source.output_names if source else ()
        index = names.index(ref.output) if ref.output in names else int(ref.output)
        return f"{base}[{index}]"

    def _forward(self, graph: Graph, lines: list[str], scope: str, alias: dict, top: bool) -> str:
        params = ", ".join(["self", *(self._var(n) for n in graph.inputs)])
        outs = {name: self._ref(ref, scope, alias) for name, ref in graph.outputs.items()}
        body = "\n".join(f"        {line}" for line in [*lines, return_statement(outs, top)])
        return f"    def forward({params}):\n{body}\n"
    def _graph_tok(self, node: Node, expr: str, b: _Builder, inits: list, owner: str) -> tuple:
        """A graph child: an nn.Sequential written out, or a call of its generated class."""
        if not self._sequential(node):
            inst = self.by_path[node.path]
            args = tuple(("pos", ("h", b.hole(inst.param_value(p), p.name, owner, p.default)))
                         if p.default is _REQ else
                         ("kw", p.name, b.hole(inst.param_value(p), p.name, owner, p.default))
                         for p in inst.group.signature())
            return ("call", ("cls", inst.group.gid), args)
        nodes = node.body.nodes
        positional = _positional(node.body)
        loops = self._init_loops(node.body)
        for torch_cls, children in loops.items():
            first = children[0]
            module = self.shaped.nodes[first.path].module
            body = tuple(tok for _, tok in self._init_toks(first, module, _LOOP_VAR, b, owner))
            inits.append(("init", ("loop", expr, f"nn.{torch_cls.__name__}", body)))
        looped = {id(c) for children in loops.values() for c in children}
        items = []
        for child in nodes:
            cexpr = _child(expr, child.name, indexed=positional)
            cowner = f"{owner}_{child.name}"
            if child.kind == "prim":
                module = self.shaped.nodes[child.path].module
                tok = self._module_tok(child, module, b, cowner, "seq")
                if id(child) not in looped:
                    inits += self._init_toks(child, module, cexpr, b, cowner)
                inits += _spectral_norm_toks(child, cexpr)
            else:
                tok = self._graph_tok(child, cexpr, b, inits, cowner)
            if child.freeze:
                inits.append(("freeze", ("t", f"{cexpr}.requires_grad_(False)")))
            items.append((child.name, tok))
        return ("seq", positional, tuple(items))
    def _tie_toks(self, graph: Graph) -> list[tuple]:
        """`tie:` at the network's top: one Parameter under two names, after all init."""
        out = []

        def walk(g: Graph, expr: str, indexed: bool) -> None:
            for node in g.nodes:
                here = _child(expr, node.name, indexed=indexed)
                for pname, target in node.tie.items():
                    owner, _, tname = str(target).rpartition(".")
                    out.append(("tie", ("t", f"{here}.{pname} = {self._path_expr(graph, owner)}.{tname}")))
                if node.body is not None and node.shared is None:
                    walk(node.body, here, self._sequential(node) and _positional(node.body))

        walk(graph, "self", False)
        return out

    def _path_expr(self, graph: Graph, path: str) -> str:
        """`self.layer1[0].conv1` for the node path `layer1.0.conv1` of a network."""
        expr, g, indexed = "self", graph, False
        for seg in path.split(".") if path else []:
            node = g.node(seg)
            expr = _child(expr, seg, indexed=indexed)
            if node is None or node.body is None:
                break
            g = node.body
            indexed = self._sequential(node) and _positional(g)
        return expr
    # -- what varies between the instances of a class becomes its parameters --
    def _finalize(self, group: _Group) -> None:
        insts = group.insts
        clusters: dict[tuple, list[int]] = {}  # literals equal in every instance: one parameter
        for i, hole in enumerate(group.holes):
            vec = tuple(_vkey(inst.values[i]) for inst in insts)
            if len(set(vec)) == 1:
                value = insts[0].values[i]
                group.text[i] = _lit(value)
                if hole.default is not _REQ and _same(value, hole.default):
                    group.omitted.add(i)
            else:
                clusters.setdefault(vec, []).append(i)
        block: dict[str, list] = {}  # the block's params, where every instance has a value
        if all(inst.block_args is not None for inst in insts):
            for name in insts[0].block_args:
                values = [inst.block_args.get(name, _MISSING) for inst in insts]
                if all(v is not _MISSING for v in values) and _is_attr(name) and \
                        name not in _GLOBALS:
                    block[name] = values
        decls = ({k: v for k, v in self._block_decls(insts[0].node.op).items()
                  if _literal_default(v)} if block else {})
        taken = set(_GLOBALS) | set(insts[0].block_args or {})  # fresh names avoid both
        params: dict[str, tuple[int, _Param]] = {}  # name -> (first hole using it, parameter)
        for holes in clusters.values():  # a literal that is a block param is named after it
            values = [inst.values[holes[0]] for inst in insts]
            match = next((p for p, pv in block.items()
                          if p not in params and all(_same(a, v) for a, v in zip(pv, values))),
                         None)
            if match is not None:
                params[match] = (holes[0], _Param(match, holes, decls.get(
                    match, group.holes[holes[0]].default), match))
                for i in holes:
                    group.text[i] = match
        for holes in clusters.values():
            if holes[0] in group.text:
                continue
            first = group.holes[holes[0]]
            if (multiple := _multiple([inst.values[holes[0]] for inst in insts], block)):
                name, k = multiple
                if name not in params:
                    params[name] = (holes[0], _Param(name, [], decls.get(name, _REQ), name))
                params[name] = (min(params[name][0], holes[0]), params[name][1])
                text = f"{name} * {k}"
            else:
                text = _fresh(first.name, first.owner, taken)
                taken.add(text)
                params[text] = (holes[0], _Param(text, holes, first.default))
            for i in holes:
                group.text[i] = text
        group.params = [p for _, p in sorted(params.values(), key=lambda fp: fp[0])]

    def _name_classes(self) -> None:
        """Networks after the spec; the rest after their op, numbered: Bottleneck, Bottleneck2."""
        used = set(self.helpers) | _GLOBALS
        groups = sorted(self.groups, key=lambda g: min(i.order for i in g.insts))
        for g in [*(t.group for t in self.tops), *(g for g in groups if g.insts[0].node)]:
            name, n = g.base, 2
            while name in used:
                name, n = f"{g.base}{n}", n + 1
            used.add(name)
            g.name = name


# ---- small pieces -----------------------------------------------------------------------------

def _set_heights(inst: _Inst) -> int:
    inst.height = 1 + max((_set_heights(c) for c in inst.children), default=-1)
    return inst.height


def _chain(graph: Graph) -> bool:
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


def _positional(graph: Graph) -> bool:
    return [n.name for n in graph.nodes] == [str(i) for i in range(len(graph.nodes))]



def _spectral_norm_toks(node: Node, expr: str) -> list[tuple]:
    if not node.spectral_norm:
        return []
    return [("spectral_norm", ("t", f"nn.utils.parametrizations.spectral_norm({expr})"))]


def _assign(name: str, tok: tuple) -> tuple:
    if _is_attr(name):
        return ("cat", (("t", f"self.{name} = "), tok))
    return ("cat", (("t", f"self.add_module({_lit(name)}, "), tok, ("t", ")")))


_TYPE_NAMES = {"int", "float", "bool", "str", "list"}
_LOOP_VAR = "\x00layer"  # the loop variable of an init loop, named when the class is written
_EPILOGUE = {  # what follows the layers in an __init__, in this order
    "init": "# initialisation: the spec's `init:` rules",
    "spectral_norm": "# spectral normalisation (`spectral_norm: true`), after initialisation",
    "freeze": "# frozen (`freeze: true`): not trained",
    "tie": "# tied (`tie:`): one tensor under two names",
}


def _literal_default(decl: Any) -> bool:
    """A block param declared with a plain default (not `int`, not an expression)."""
    if isinstance(decl, bool) or isinstance(decl, (int, float)):
        return True
    return isinstance(decl, str) and "$" not in decl and decl not in _TYPE_NAMES


def _multiple(values: list, block: dict[str, list]) -> tuple[str, int] | None:
    """`values` == k * a block param, for one integer k >= 2 (written `width * 4`)."""
    if not all(type(v) is int for v in values):
        return None
    for name, pv in block.items():
        if all(type(p) is int and p > 0 and v % p == 0 for p, v in zip(pv, values)):
            ks = {v // p for p, v in zip(pv, values)}
            if len(ks) == 1 and (k := ks.pop()) >= 2:
                return name, k
    return None


def _fresh(name: str, owner: str, taken: set[str]) -> str:
    """A parameter name from the argument's own name, prefixed by its module if taken."""
    name = name if _is_attr(name) else "arg"
    if name not in taken:
        return name
    prefixed = f"{owner}_{name}" if _is_attr(f"{owner}_{name}") else f"arg_{name}"
    candidate, n = prefixed, 2
    while candidate in taken:
        candidate, n = f"{prefixed}{n}", n + 1
    return candidate
