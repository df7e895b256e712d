"""Stage 2b, resolve: turn the merged document into networks of nodes (the IR).

Params are bound and typed, `${...}` expressions evaluated (those that read `input` are kept as
`Deferred` for the shape stage), spec-defined blocks instantiated, `repeat`/`seq`/`each`
expanded into numbered children, and `when: false` nodes turned into pass-throughs.
Errors are collected per node; resolution carries on so that one run reports them all.
"""

from __future__ import annotations

from typing import Any

from engine.blocks.registry import lookup, suggest
from engine.compiler.budget import Budget, TooMuchWork
from engine.compiler.expr import ExprError, NeedsShape, Poisoned, evaluate_value, is_expression, source_of
from engine.compiler.expr_functions import define_functions
from engine.compiler.ir import INVALID, Deferred, Diagnostic, Graph, Loc, LocDict, LocList, Node, Ref, Spec
from engine.compiler.names import name_problem
from engine.compiler.repeat import DEFAULT_INPUT, Repeats

NODE_KEYS = {"op", "in", "repeat", "names", "args", "first", "last", "when", "otherwise", "seq", "graph",
             "share", "tie", "init", "outputs", "each", "as", "freeze",
             "spectral_norm", "map"}
TYPES = {"int": int, "float": (int, float), "bool": bool, "str": str, "list": list}


def resolve(doc: LocDict, file: str) -> tuple[Spec, list[Diagnostic]]:
    """Resolve a merged spec document; returns the spec and every error found."""
    r = _Resolver(doc, file)
    try:
        spec = r.spec()
    except TooMuchWork as stop:
        r.errors.append(stop.diagnostic)
    except RecursionError:
        r.error("the spec nests blocks, graphs or sequences too deeply to resolve", doc.loc, "",
                "flatten the nesting of blocks inside blocks")
    else:
        return spec, r.errors
    return Spec(name=str(doc.get("name", "model")), file=file, networks={}, params={}, init={},
                rename={}, doc=doc, multi=False), r.errors


class _Resolver(Repeats, Budget):
    def __init__(self, doc: LocDict, file: str):
        self.doc, self.file = doc, file
        self.errors: list[Diagnostic] = []
        blocks = doc.get("blocks")
        self.blocks: dict[str, Any] = blocks if isinstance(blocks, dict) else {}
        # the spec-defined blocks being instantiated, outermost first, with their bound params
        self.block_stack: list[tuple[str, str]] = []
        self.start_budget()

    def error(self, message: str, loc: Loc | None, path: str = "", hint: str = "") -> None:
        self.errors.append(Diagnostic(message, loc, path, hint))

    # ---- the document -------------------------------------------------------------------
    def spec(self) -> Spec:
        doc = self.doc
        # the spec's `functions:`, put into every scope by bind_params (blocks' scopes too)
        self.functions, problems = define_functions(doc.get("functions"), doc.value_loc("functions"))
        self.errors += problems
        scope = self.bind_params(doc.get("params") or {}, {}, {}, doc.value_loc("params"), "")
        nets = doc.get("networks")
        if isinstance(nets, dict):
            for name in nets:  # each a submodule of the ModuleDict that build returns
                problem = name_problem(name, "network name")
                if problem:
                    self.error(problem[0], nets.key_loc(name), str(name), problem[1])
            networks = {name: self.network(name, d, scope, name) for name, d in nets.items()
                        if isinstance(d, dict)}
        else:
            networks = {str(doc.get("name", "model")): self.network("model", doc, scope, "")}
        init = self.value(doc.get("init") or {}, scope, doc.value_loc("init"), "init")  # ${...} too
        return Spec(name=str(doc.get("name", "model")), file=self.file, networks=networks,
                    params={k: v for k, v in scope.items() if not k.startswith("_")},
                    init=init if isinstance(init, dict) else {}, rename=doc.get("rename") or {},
                    doc=doc, multi=isinstance(nets, dict))

    def network(self, name: str, defn: LocDict, scope: dict, path: str) -> Graph:
        declared = defn.get("inputs") or {}
        for k in declared:  # inputs are variables of the generated forward, as nodes are
            problem = name_problem(k, "input name", attribute=False)
            if problem:
                self.error(problem[0], declared.key_loc(k), path, problem[1])
        inputs = {k: self.shape(v, scope, declared.value_loc(k), path) for k, v in declared.items()}
        graph = defn.get("graph")
        if not isinstance(graph, dict):
            near = [k for k in defn if isinstance(k, str) and "'graph'" in suggest(k, ["graph"])]
            if near:
                self.error(f"unknown key '{near[0]}'", defn.key_loc(near[0]), "",
                           "did you mean 'graph'?")
            else:
                self.error("a network needs a `graph:` mapping of nodes", defn.loc, path,
                           "write graph: {conv1: {op: conv, out: 64, k: 3}, ...}")
            graph = {}
        first = next(iter(inputs), DEFAULT_INPUT)
        nodes = self.nodes(graph, scope, path, first)
        outputs = self.outputs(defn, nodes, first, path, scope)
        graph_ir = Graph(name, inputs, nodes, outputs, defn.loc)
        graph_ir.input_locs = {k: declared.value_loc(k) for k in declared}
        return graph_ir

    def shape(self, dims: Any, scope: dict, loc: Loc, path: str) -> list | dict:
        if isinstance(dims, dict):  # {shape: [B, T], dtype: long, channels_first: false}
            return {"shape": self.shape(dims.get("shape"), scope, loc, path),
                    "dtype": str(dims.get("dtype", "float32")),
                    "channels_first": dims.get("channels_first")}
        if not isinstance(dims, list):
            self.error(f"an input shape must be a list of sizes, got {dims!r}", loc, path,
                       "write image: [B, 3, 224, 224]")
            return []
        out = []
        for d in dims:
            if isinstance(d, str) and not is_expression(d):
                out.append(d)  # a symbolic size such as B or T, bound by `dims:` later
            else:
                out.append(self.value(d, scope, loc, path))
        return out

    def outputs(self, defn: LocDict, nodes: list[Node], first: str, path: str,
                scope: dict) -> dict[str, Ref]:
        declared = defn.get("outputs")
        if declared is None:
            return {"out": Ref(nodes[-1].name if nodes else first)}
        if isinstance(declared, str):
            return {"out": parse_ref(declared)}
        if not isinstance(declared, dict) or not declared:
            self.error("`outputs:` must map output names to nodes" + (
                "; it is empty" if isinstance(declared, dict) else ""),
                defn.value_loc("outputs"), path, "write outputs: {logits: fc}")
            return {}
        refs = {k: self.output(k, v, declared, scope, path) for k, v in declared.items()}
        kept = {k: ref for k, ref in refs.items() if ref is not None}
        if not kept:
            self.error("every output is switched off by its `when:`", defn.value_loc("outputs"), path,
                       "leave at least one output without `when:` (the main one)")
        return kept

    def output(self, name: str, value: Any, declared: LocDict, scope: dict, path: str) -> Ref | None:
        """`name: node`, or `name: {node: aux1, when: $aux_logits}`: an output that a param
        switches on (None when it is off: the output is not returned)."""
        if not isinstance(value, dict):
            return parse_ref(str(value))
        loc = declared.value_loc(name)
        if "node" not in value or set(value) - {"node", "when"}:
            self.error(f"output '{name}' must be a node name or {{node: NAME, when: CONDITION}}",
                       loc, path, f"write {name}: {{node: fc, when: $flag}}")
            return None
        when_loc = value.value_loc("when") if isinstance(value, LocDict) else loc
        when = self.value(value.get("when", True), scope, when_loc, path)
        if when is not INVALID and not isinstance(when, bool):
            self.error(f"the `when:` of output '{name}' must be true or false, got {when!r}",
                       when_loc, path, "write when: $flag, a bool param, or a comparison")
        return parse_ref(str(value["node"])) if when is INVALID or when else None

    # ---- params and values ----------------------------------------------------------------
    def bind_params(self, decls: Any, args: dict, outer: dict, loc: Loc, path: str,
                    arg_locs: dict | None = None, key_locs: dict | None = None) -> dict:
        """Bind declared params (`name: type` required, `name: default`) to call arguments.

        `loc` is where the call is written: errors about its arguments point there."""
        scope = {**outer, **getattr(self, "functions", {})}
        if not isinstance(decls, dict):
            self.error("`params:` must be a mapping of name: default", loc, path)
            return scope
        misspelt = set()
        for name in args:
            if name not in decls:
                close = suggest(name, decls)
                misspelt.update(n for n in decls if f"'{n}'" in close)
                self.error(f"unknown argument '{name}'", (key_locs or {}).get(name, loc), path,
                           close or f"this block takes: {', '.join(decls) or 'none'}")
        for name, decl in decls.items():
            scope[name] = self.bind_one(name, decl, args, scope, decls, loc, path, arg_locs,
                                        quiet=name in misspelt)
        return scope

    def bind_one(self, name, decl, args, scope, decls, loc, path, arg_locs, quiet=False) -> Any:
        at = (arg_locs or {}).get(name, loc)
        if name in args:
            value = args[name]
            expected = TYPES.get(decl) if isinstance(decl, str) else None
            if expected and value is not INVALID and not isinstance(value, Deferred) and (
                    not isinstance(value, expected) or (decl != "bool" and isinstance(value, bool))):
                self.error(f"argument '{name}' must be {decl}, got {value!r}", at, path,
                           f"write {name}: <{decl}>")
                return INVALID
            return value
        if isinstance(decl, str) and decl in TYPES:
            if not quiet:  # a misspelt argument already explains why this one is missing
                self.error(f"missing required argument '{name}' ({decl})", loc, path,
                           f"add {name}: <{decl}> to the node's arguments")
            return INVALID
        where = decls.value_loc(name) if isinstance(decls, LocDict) else loc
        return self.value(decl, scope, where, path)

    def value(self, raw: Any, scope: dict, loc: Loc, path: str, shape_ok: bool = False) -> Any:
        """Evaluate expressions inside a YAML value; shape-dependent ones become Deferred."""
        if isinstance(raw, dict):
            return {k: self.value(v, scope, loc, path, shape_ok) for k, v in raw.items()}
        if isinstance(raw, list):
            return [self.value(v, scope, loc, path, shape_ok) for v in raw]
        if not is_expression(raw):
            return raw
        try:
            return evaluate_value(raw, {**scope, "input": NeedsShape, "inputs": NeedsShape})
        except Poisoned:
            return INVALID  # built from a value whose error is already reported
        except NeedsShape:
            if shape_ok:
                return Deferred(source_of(raw), dict(scope), loc)
            self.error(f"'{raw}' reads the upstream shape, which is not known here", loc, path,
                       "use `input.` and `inputs[k].` only in a node's arguments or `when:`")
        except ExprError as err:
            self.error(str(err), loc, path, err.hint)
        return INVALID

    # ---- nodes ------------------------------------------------------------------------------
    def nodes(self, mapping: dict, scope: dict, path: str, first: str) -> list[Node]:
        out, prev = [], first
        for name, raw in mapping.items():
            loc = mapping.key_loc(name) if isinstance(mapping, LocDict) else None
            problem = name_problem(name)
            if problem:  # reported; the node is still made, so its readers are not errors too
                self.error(*problem[:1], loc, f"{path}.{name}" if path else str(name), problem[1])
                if not isinstance(name, str):
                    continue
            node = self.node(name, raw, scope, path, [Ref(prev)], loc, out)
            if node.share is not None:
                self.link_share(node, out)
            out.append(node)
            prev = node.name
        return out

    def node(self, name: str, raw: Any, scope: dict, path: str, default_in: list[Ref],
             loc: Loc | None, earlier: list[Node] | None = None) -> Node:
        full = f"{path}.{name}" if path else name
        if isinstance(raw, str):
            raw = LocDict({"op": raw}, loc=loc)
        if not isinstance(raw, LocDict):
            self.error(f"node '{name}' must be a mapping such as {{op: relu}}", loc, full)
            return Node(name, "?", "error", default_in, loc=loc, path=full)
        loc = loc or raw.loc  # errors about the node point at its name
        inputs = self.refs(raw.get("in"), raw, full) if "in" in raw else default_in
        inputs = self.expand_steps(inputs, earlier or [], raw, full)
        when = self.optional(raw, "when", True, scope, full, shape_ok=True)
        passes = self.passed_on(raw, inputs, full, loc)
        if "when" in raw and not isinstance(when, Deferred) and not when and when is not INVALID:
            self.made_node(loc, full)
            return Node(name, "pass", "pass", inputs[passes:passes + 1], loc=loc, path=full)
        node = self.body_node(name, raw, scope, full, inputs, loc=loc)
        node.when, node.passes = (True if when is INVALID else when), passes
        node.share = None if "repeat" in raw else raw.get("share")  # a repeat's share: is its own
        node.init = self.optional(raw, "init", {}, scope, full)
        node.tie = raw.get("tie") or {}
        node.freeze = bool(self.optional(raw, "freeze", False, scope, full))
        node.spectral_norm = bool(self.optional(raw, "spectral_norm", False, scope, full))
        return node

    def optional(self, raw: LocDict, key: str, default: Any, scope: dict, path: str,
                 shape_ok: bool = False) -> Any:
        """A node key's evaluated value, or `default` (a plain value) where the node has none:
        most nodes set none of when/init/freeze/spectral_norm, and thousands are resolved."""
        if key not in raw:
            return default if not isinstance(default, dict) else {}
        return self.value(raw[key], scope, raw.value_loc(key), path, shape_ok)

    def passed_on(self, raw: LocDict, inputs: list[Ref], path: str, loc: Loc | None) -> int:
        """The input a node switched off by `when:` passes on: its only one, or the one its
        `otherwise:` names. A node with several inputs must say which (no silent branch drop:
        `add: {in: [input, conv], when: ...}` would otherwise pass `input` and lose `conv`)."""
        names = [str(r) for r in inputs]
        if "otherwise" in raw:
            chosen = str(raw["otherwise"])
            if chosen in names:
                return names.index(chosen)
            self.error(f"`otherwise: {chosen}` is not one of the node's inputs ({', '.join(names)})",
                       raw.value_loc("otherwise"), path, "name the input it passes on when `when:` "
                       "is false")
        elif "when" in raw and len(inputs) > 1:
            self.error(f"`when:` may switch this node off, and it has {len(inputs)} inputs "
                       f"({', '.join(names)}): which one passes on is not said", loc, path,
                       f"add `otherwise:` naming the input it passes on ({' or '.join(names)})")
        return 0

    def link_share(self, node: Node, earlier: list[Node]) -> None:
        """`share: conv`: reuse an earlier sibling's module; the op and arguments are its."""
        target = next((n for n in earlier if n.name == node.share), None)
        if target is None or target.kind not in ("prim", "graph"):
            self.error(f"`share: {node.share}` names no earlier node of this graph", node.loc,
                       node.path, suggest(str(node.share), [n.name for n in earlier]) or
                       "share with a node defined above this one")
            node.kind = "error"
            return
        if node.args or node.op not in ("?", target.op):
            self.error(f"a node that shares '{target.name}' takes its op and arguments from it",
                       node.loc, node.path, "remove op: and the arguments, keep share:")
        node.op, node.kind, node.shared, node.body = target.op, target.kind, target, None

    def refs(self, value: Any, raw: LocDict, path: str) -> list[Ref]:
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, str) for v in items):
            self.error(f"`in:` must name nodes or inputs, got {value!r}", raw.value_loc("in"),
                       path, "write in: conv1 or in: [bn3, downsample]")
            return []
        return [parse_ref(v) for v in items]

    def body_node(self, name: str, raw: LocDict, scope: dict, path: str,
                  inputs: list[Ref], extra: dict | None = None, loc: Loc | None = None) -> Node:
        self.made_node(loc or raw.loc, path)
        node = self.body_node_at(name, raw, scope, path, inputs, extra, loc or raw.loc)
        node.loc = loc or node.loc
        return node

    def body_node_at(self, name: str, raw: LocDict, scope: dict, path: str,
                     inputs: list[Ref], extra: dict | None, loc: Loc) -> Node:
        if "repeat" in raw:
            return self.repeat(name, raw, scope, path, inputs)
        if "seq" in raw:
            return self.seq(name, raw, scope, path, inputs)
        if "graph" in raw:
            return self.inline_graph(name, raw, scope, path, inputs)
        op = raw.get("op")
        if is_expression(op):  # an op chosen by a param: `op: $act`
            op = self.value(op, scope, raw.value_loc("op"), path)
        return self.call(name, raw, scope, path, inputs, op, extra, loc)

    def call(self, name: str, raw: LocDict, scope: dict, path: str, inputs: list[Ref],
             op: Any, extra: dict | None, loc: Loc) -> Node:
        args = self.args(raw, scope, path, extra)
        arg_locs = _arg_locs(raw, "value_loc")
        key_locs = _arg_locs(raw, "key_loc")
        if op is None and "share" in raw:
            return Node(name, "?", "prim", inputs, args, loc, path, arg_locs=arg_locs,
                        arg_key_locs=key_locs)
        if not isinstance(op, str):
            self.error("node has no `op:`", loc, path,
                       "add op: <block name> (see `engine blocks`), or seq:/graph:/repeat:")
            return Node(name, "?", "error", inputs, loc=loc, path=path)
        if op in self.blocks:
            return self.instantiate(name, op, args, scope, path, inputs, loc, arg_locs,
                                    key_locs)
        info = lookup(op)
        kind = info.kind if info else "prim"
        if info is not None and info.inputs == 0 and "in" not in raw:
            inputs = []  # a source node (a learned tensor) takes nothing by default
        return Node(name, op, kind, inputs, args, loc, path, arg_locs=arg_locs,
                    arg_key_locs=key_locs)

    def args(self, raw: LocDict, scope: dict, path: str, extra: dict | None) -> dict:
        merged = {k: v for k, v in raw.items() if k not in NODE_KEYS}
        if isinstance(raw.get("args"), dict):
            merged.update(raw["args"])
        merged.update(extra or {})
        return {k: self.value(v, scope, _arg_loc(raw, k), path, True) for k, v in merged.items()}

    def instantiate(self, name, op, args, scope, path, inputs, loc, arg_locs, key_locs) -> Node:
        """A spec-defined block: bind its params, then resolve its nodes in the new scope."""
        block = self.blocks[op]
        if not isinstance(block, LocDict):
            self.error(f"block '{op}' must be a mapping with params: and nodes:", loc, path)
            return Node(name, op, "error", inputs, loc=loc, path=path)
        if any(isinstance(v, Deferred) for v in args.values()):
            self.error(f"arguments of block '{op}' cannot depend on the upstream shape", loc,
                       path, "compute shape-dependent values inside the block's nodes instead")
        if self.created + self.block_size(op) > self.max_nodes:
            raise TooMuchWork(self.too_many(loc, path, f"block '{op}' makes "
                                                       f"{self.block_size(op):,} nodes or more"))
        globals_ = {k: v for k, v in scope.items() if k in (self.doc.get("params") or {})}
        inner = self.bind_params(block.get("params") or {}, args, globals_, loc, path, arg_locs,
                                 key_locs)
        cycle = self.endless(op, inner)
        if cycle:
            self.error(cycle, loc, path, "a block may use itself only with other arguments and "
                       "under a `when:` that turns false (as specs/unet.yaml's `level`); use "
                       "repeat: for a stack of copies")
            return Node(name, op, "error", inputs, loc=loc, path=path)
        names = block.get("inputs") or [DEFAULT_INPUT]
        names = names if isinstance(names, list) else [names]
        self.block_stack.append((op, repr(sorted(inner.items(), key=str))))
        try:
            nodes = self.nodes(block.get("nodes") or {}, inner, path, names[0])
        finally:
            self.block_stack.pop()
        body = Graph(op, {n: None for n in names}, nodes,
                     self.outputs(block, nodes, names[0], path, inner), block.loc)
        return Node(name, op, "graph", inputs, args, loc, path, body=body, arg_locs=arg_locs)

    def seq(self, name: str, raw: LocDict, scope: dict, path: str, inputs: list[Ref]) -> Node:
        items = raw["seq"]
        if "outputs" in raw:  # a seq's output is its last item's: never ignore what is written
            self.error("a `seq:` has one output, its last item's: `outputs:` does not apply",
                       raw.key_loc("outputs"), path,
                       "write the nodes as a `graph:` to name several outputs")
        if not isinstance(items, LocList):
            self.error("`seq:` must be a list of nodes", raw.value_loc("seq"), path,
                       "write seq: [{op: conv, out: 64}, {op: relu}]")
            items = LocList()
        children: list[Node] = []
        for raw_item, item_scope in self.splice(items, scope, path):
            child = self.node(str(len(children)), raw_item, item_scope, path,
                              [Ref(children[-1].name if children else DEFAULT_INPUT)],
                              getattr(raw_item, "loc", items.loc))
            if isinstance(child.when, Deferred):  # renumbering must not wait for the shapes
                self.error("in a `seq:`, `when:` cannot read the upstream shape (`input.`): "
                           "an item switched off is dropped and the later items renumbered, "
                           "which must be known before shapes are", child.loc, child.path,
                           "decide with params (e.g. a block param holding the width), or use "
                           "a `graph:` whose node passes its input on")
            if child.kind != "pass":  # a seq item switched off is dropped, like in a Python list
                children.append(child)
        last = children[-1].name if children else DEFAULT_INPUT
        body = Graph("seq", {DEFAULT_INPUT: None}, children, {"out": Ref(last)}, raw.loc)
        return Node(name, "seq", "graph", inputs, {}, raw.loc, path, body=body)

    def splice(self, items: LocList, scope: dict, path: str):
        """Yield (item, scope) pairs, expanding `{each: list-or-count, as: v, seq: [...]}` inline."""
        for k, item in enumerate(items):
            if not (isinstance(item, LocDict) and "each" in item and "op" not in item):
                yield item, scope
                continue
            values = self.value(item["each"], scope, item.value_loc("each"), path)
            values = range(values) if isinstance(values, int) else values
            if not isinstance(values, (list, range)) or not isinstance(item.get("seq"), LocList):
                self.error("`each:` needs a list or a count, and a `seq:` list to repeat",
                           items.item_loc(k), path, "write {each: $cfg, as: v, seq: [...]}")
                continue
            if not self.check_copies(len(values), item.value_loc("each"), path):
                continue
            outer, self.copies = self.copies, self.copies * max(len(values), 1)
            try:
                for index, value in enumerate(values):
                    inner = {**scope, str(item.get("as", "i")): value, "index": index}
                    yield from self.splice(item["seq"], inner, path)
            finally:
                self.copies = outer

    def inline_graph(self, name: str, raw: LocDict, scope: dict, path: str,
                     inputs: list[Ref]) -> Node:
        graph = raw["graph"]
        if not isinstance(graph, dict):
            self.error("`graph:` must be a mapping of nodes", raw.value_loc("graph"), path)
            graph = {}
        nodes = self.nodes(graph, scope, path, DEFAULT_INPUT)
        body = Graph(name, {DEFAULT_INPUT: None}, nodes,
                     self.outputs(raw, nodes, DEFAULT_INPUT, path, scope), raw.loc)
        return Node(name, "graph", "graph", inputs, {}, raw.loc, path, body=body)


def _arg_locs(raw: LocDict, which: str) -> dict[str, Loc]:
    """Where each argument of a node is written (`which`: key_loc or value_loc)."""
    locs = {k: getattr(raw, which)(k) for k in raw if k not in NODE_KEYS}
    args = raw.get("args")
    if isinstance(args, LocDict):
        locs.update({k: getattr(args, which)(k) for k in args})
    return locs


def parse_ref(text: str) -> Ref:
    node, _, output = text.partition(".")
    return Ref(node, output or None)


def _arg_loc(raw: LocDict, key: str) -> Loc:
    args = raw.get("args")
    if key not in raw and isinstance(args, LocDict) and key in args:
        return args.value_loc(key)
    return raw.value_loc(key)
