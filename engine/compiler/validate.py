"""Stage 3, validate: the JSON Schema (run on the merged document, before resolution), and the
semantic rules over the resolved graph.

Each rule is a small function that yields diagnostics (in the manner of python-jsonschema's
keyword functions); all of them run, so one pass reports every error in the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import jsonschema
from torch import nn

from engine.blocks.registry import INFERRED, all_blocks, check_type, lookup, suggest, type_name
from engine.compiler.init import rule_problem
from engine.compiler.ir import INVALID, Deferred, Diagnostic, Graph, Loc, LocDict, LocList, Node, Spec, dedupe
from engine.compiler.schema import dispatching_validator
from engine.compiler.statedict import rename_problem
from engine.compiler.walk import iter_nodes

POSITIVE = {"out", "k", "heads", "size", "stride", "groups", "dilation"}


def validate(spec: Spec) -> list[Diagnostic]:
    errors: list[Diagnostic] = []
    user_blocks = set(spec.doc.get("blocks") or {})
    for graph in spec.networks.values():
        errors += graph_rules(graph, user_blocks)
        for node in iter_nodes(graph):
            if node.body is not None:
                errors += graph_rules(node.body, user_blocks)
    errors += list(check_spec_init(spec))
    errors += list(check_rename(spec))
    return dedupe(errors)  # the JSON Schema ran before resolution (check_schema)


def graph_rules(graph: Graph, user_blocks: set[str]) -> list[Diagnostic]:
    out = list(check_references(graph)) + list(check_cycles(graph))
    for node in graph.nodes:
        for rule in NODE_RULES:
            out += list(rule(node, user_blocks))
    return out


# ---- graph rules ---------------------------------------------------------------------------
def check_references(graph: Graph) -> Iterator[Diagnostic]:
    names = [n.name for n in graph.nodes]
    known = set(graph.inputs)
    for node in graph.nodes:
        for ref in node.inputs:
            if ref.node in known:
                continue
            if ref.node in names:
                continue  # a later node: reported by check_cycles as a cycle or forward use
            yield Diagnostic(f"'{node.name}' takes input '{ref.node}', which does not exist",
                             node.loc, node.path, suggest(ref.node, [*known, *names]) or
                             f"earlier nodes and inputs: {', '.join(sorted(known)) or 'none'}")
        known.add(node.name)
    for out_name, ref in graph.outputs.items():
        if ref.node not in known:
            yield Diagnostic(f"output '{out_name}' names '{ref.node}', which does not exist",
                             graph.loc, graph.name, suggest(ref.node, known))


def check_cycles(graph: Graph) -> Iterator[Diagnostic]:
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    if all(order.get(r.node, -1) < order[n.name] for n in graph.nodes for r in n.inputs):
        return  # every input is from above: no loop, no forward reference (and no networkx import)
    import networkx as nx
    g = nx.DiGraph()
    for node in graph.nodes:
        g.add_node(node.name)
        g.add_edges_from((r.node, node.name) for r in node.inputs if r.node in order)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        # blame the node whose `in:` names a node below it: that edge closes the loop
        src, dst = next((e for e in cycle if order[e[0]] > order[e[1]]), cycle[0])
        start = [i for i, e in enumerate(cycle) if e[1] == dst][0]
        ordered = cycle[start + 1:] + cycle[:start + 1]
        loop = " -> ".join([dst, *(b for _, b in ordered)])
        node = graph.node(dst)
        yield Diagnostic(f"cycle: {loop} (through `in: {src}`)", node.loc, node.path,
                         "a node may only take inputs from nodes above it")
        return
    for node in graph.nodes:
        for ref in node.inputs:
            if order.get(ref.node, -1) > order[node.name]:
                yield Diagnostic(f"'{node.name}' uses '{ref.node}', which is defined below it",
                                 node.loc, node.path, "nodes run in the order written; move it up")


# ---- node rules ----------------------------------------------------------------------------
def check_op(node: Node, user_blocks: set[str]) -> Iterator[Diagnostic]:
    if node.kind == "prim" and lookup(node.op) is None:
        close = suggest(node.op, [*all_blocks(), *user_blocks]) or "`engine blocks` lists the ops."
        # an op nobody registered may be a block of the user's own whose module was not imported
        hint = f"{close} A block of your own needs its module: `engine -p my_blocks.py ...`"
        yield Diagnostic(f"unknown op '{node.op}'", node.loc, node.path, hint)


def check_args(node: Node, user_blocks: set[str]) -> Iterator[Diagnostic]:
    info = lookup(node.op) if node.kind in ("prim", "param") else None
    if info is None or node.shared is not None:
        return
    declared = info.args
    for name, value in node.args.items():
        loc = node.arg_locs.get(name, node.loc)
        if value is INVALID or isinstance(value, list) and INVALID in value:
            continue  # its error is already reported
        if name in INFERRED:
            yield Diagnostic(f"'{name}' is inferred from the input shape",
                             node.arg_key_locs.get(name, loc), node.path,
                             f"remove {name}:")
        elif name not in declared:
            yield Diagnostic(f"unknown argument '{name}' for op '{node.op}'",
                             node.arg_key_locs.get(name, loc), node.path,
                             suggest(name, [a for a in declared if a not in INFERRED]) or
                             f"'{node.op}' takes: {', '.join(a for a in declared if a not in INFERRED)}")
        elif not isinstance(value, Deferred) and not _deferred_inside(value) and \
                not check_type(value, declared[name].annotation):
            yield Diagnostic(f"argument '{name}' of '{node.op}' must be "
                             f"{type_name(declared[name].annotation)}, got {value!r}", loc,
                             node.path, f"write {name}: <{type_name(declared[name].annotation)}>")
        elif name in POSITIVE and _non_positive(value):
            yield Diagnostic(f"argument '{name}' of '{node.op}' must be positive, got {value!r}",
                             loc, node.path, "sizes, kernels and strides are >= 1")
    for name, arg in declared.items():
        if arg.required and name not in INFERRED and name not in node.args:
            yield Diagnostic(f"op '{node.op}' needs argument '{name}' "
                             f"({type_name(arg.annotation)})", node.loc, node.path,
                             f"add {name}: to the node")


def check_input_count(node: Node, user_blocks: set[str]) -> Iterator[Diagnostic]:
    info = lookup(node.op) if node.kind in ("prim", "param") else None
    if info is not None and not info.accepts_inputs(len(node.inputs)) and info.inputs != 0:
        want = info.inputs if isinstance(info.inputs, int) else \
            f"{info.inputs[0]} or more" if info.inputs[1] < 0 else f"{info.inputs[0]}-{info.inputs[1]}"
        yield Diagnostic(f"op '{node.op}' takes {want} input(s), got {len(node.inputs)}",
                         node.loc, node.path, "list its inputs with in: [a, b]")


def check_share(node: Node, user_blocks: set[str]) -> Iterator[Diagnostic]:
    if node.share is not None and not isinstance(node.share, str):
        yield Diagnostic("`share:` must name an earlier node", node.loc, node.path)


# layers whose `weight` spectral normalisation can wrap (torch picks dim 1 for transposed convs)
_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear, nn.Embedding)


def check_spectral_norm(node: Node, user_blocks: set[str]) -> Iterator[Diagnostic]:
    if not node.spectral_norm:
        return
    info = lookup(node.op) if node.kind == "prim" else None
    if info is None or not issubclass(info.cls, _WEIGHTED):
        what = f"op '{node.op}'" if node.kind == "prim" else f"'{node.op}' (a block of layers)"
        yield Diagnostic(f"`spectral_norm: true` needs a layer with a weight matrix; {what} "
                         "has none", node.loc, node.path,
                         "put it on the conv, conv_transpose, linear or embedding nodes inside")


def check_init(node: Node, user_blocks: set[str]) -> Iterator[Diagnostic]:
    """A node's `init:`: for a parameter node the rule itself, else {parameter: rule}."""
    if node.init in ({}, None, INVALID):
        return
    rules = {"": node.init} if node.kind == "param" else node.init
    yield from _init_rules(rules, node.loc, node.path)


def check_spec_init(spec: Spec) -> Iterator[Diagnostic]:
    """The spec's `init:` ({op: {parameter: rule}}): the schema has checked the two levels."""
    doc = spec.doc.get("init")
    for op, rules in (spec.init or {}).items():
        loc = doc.value_loc(op) if isinstance(doc, LocDict) else spec.doc.loc
        yield from _init_rules(rules, loc, f"init.{op}")


def check_rename(spec: Spec) -> Iterator[Diagnostic]:
    """The spec's `rename:` rules (engine/compiler/statedict.py), each usable, at its entry."""
    doc = spec.doc.get("rename") if isinstance(spec.doc, dict) else None
    for left, right in (spec.rename or {}).items():
        problem = rename_problem(left, right)
        if problem:
            loc = doc.key_loc(left) if isinstance(doc, LocDict) else getattr(spec.doc, "loc", None)
            yield Diagnostic(problem[0], loc, "", problem[1])


def _init_rules(rules: object, loc: Loc | None, path: str) -> Iterator[Diagnostic]:
    if not isinstance(rules, dict):
        yield Diagnostic(f"`init:` maps parameters to rules, got {rules!r}", loc, path,
                         "write init: {weight: {normal: {std: 0.02}}, bias: zeros}")
        return
    for param, rule in rules.items():
        problem = rule_problem(rule)
        if problem:
            where = f" (for {param})" if param else ""
            yield Diagnostic(problem[0] + where, loc, path, problem[1])


NODE_RULES = (check_op, check_args, check_input_count, check_share,  # names: resolve, names.py
              check_spectral_norm, check_init)


def _non_positive(value) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(v, int) and not isinstance(v, bool) and v < 1 for v in values)


def _deferred_inside(value) -> bool:
    return isinstance(value, list) and any(isinstance(v, Deferred) for v in value)


# ---- the JSON Schema -------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _validator():
    return dispatching_validator()


def check_schema(doc: LocDict) -> Iterator[Diagnostic]:
    yield from check_schema_with(_validator(), doc)


def check_schema_with(validator, doc: LocDict) -> Iterator[Diagnostic]:
    """JSON Schema errors of a located document, each at the key or value it concerns."""
    for err in validator.iter_errors(_plain(doc)):
        leaf = _best(err)
        loc, key = _locate(doc, list(leaf.absolute_path))
        if leaf.validator == "additionalProperties":
            extra = [k for k in leaf.instance if k not in leaf.schema.get("properties", {})]
            where = _key_loc(doc, [*leaf.absolute_path], extra[0]) if extra else loc
            allowed = [k for k in leaf.schema.get("properties", {})]
            yield Diagnostic(f"unknown key '{extra[0] if extra else '?'}'", where,
                             ".".join(map(str, leaf.absolute_path)),
                             suggest(str(extra[0]), allowed) if extra else "")
        else:
            path = list(leaf.absolute_path)
            if isinstance(leaf.instance, dict) and path:  # a node: point at its name
                loc = _key_loc(doc, path[:-1], path[-1])
            yield Diagnostic(f"{key or 'spec'}: {leaf.message}", loc, ".".join(map(str, path)))


def _best(err: jsonschema.ValidationError) -> jsonschema.ValidationError:
    return jsonschema.exceptions.best_match([err, *err.context]) if err.context else err


def _locate(doc, path: list) -> tuple[Loc, str]:
    node, loc, key = doc, getattr(doc, "loc", None), ""
    for part in path:
        if isinstance(node, LocDict) and part in node:
            loc, key, node = node.value_loc(part), str(part), node[part]
        elif isinstance(node, LocList) and isinstance(part, int) and part < len(node):
            loc, key, node = node.item_loc(part), str(part), node[part]
        else:
            break
    return loc, key


def _key_loc(doc, path: list, key) -> Loc:
    """Where `key` is written inside the mapping at `path` (the key itself, not its value)."""
    node = doc
    for part in path:
        node = node[part] if isinstance(node, (dict, list)) else node
    return node.key_loc(key) if isinstance(node, LocDict) else _locate(doc, [*path, key])[0]


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
