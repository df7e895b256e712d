"""Matching two specs' node trees level by level: by name, by alignment in numbered sequences, by
rename; the changes found are recorded as `NodeChange`s and added/removed `Group`s."""

from __future__ import annotations

from typing import Any

from engine.blocks.registry import INFERRED, lookup
from engine.compiler.ir import Deferred, Graph, Node, Ref, Shaped
from engine.views.diff.records import (
    ADDED,
    CHANGED,
    REMOVED,
    RENAMED,
    UNCHANGED,
    DiffResult,
    Group,
    NetworkDiff,
    NodeChange,
    run_label,
    same_run,
)
from engine.views.diff.weights import weight_transfer
from engine.views.summary import node_params

_TYPE_DECLS = {"int", "float", "bool", "str", "list"}
_MAX_LCS = 250_000  # cells of the alignment table; longer sequences are matched by name only


# ---- matching ---------------------------------------------------------------------------------

class _Side:
    """One spec's node facts, computed once: normalised arguments, parameters, signatures."""

    def __init__(self, shaped: Shaped, table: dict):
        self.shaped, self.spec, self.table = shaped, shaped.spec, table
        self._params: dict[str, int] = {}
        self._sig: dict[str, int] = {}
        self._args: dict[str, dict] = {}
        blocks = self.spec.doc.get("blocks") if isinstance(self.spec.doc, dict) else None
        self.blocks = blocks if isinstance(blocks, dict) else {}

    def result(self, node: Node):
        return self.shaped.nodes.get(node.path)

    def args(self, node: Node) -> dict:
        """Arguments with defaults filled in, so `stride: 1` equals an omitted stride."""
        if node.path in self._args:
            return self._args[node.path]
        if node.kind == "pass":  # switched off by `when`: its arguments no longer matter
            self._args[node.path] = {}
            return {}
        result = self.result(node)
        args = dict(result.args) if result is not None and node.kind in ("prim", "param") \
            and result.args else dict((node.shared or node).args)
        if node.kind in ("prim", "param"):
            info = lookup(node.op)
            for name, arg in (info.args.items() if info else ()):
                if name not in INFERRED and not arg.required and name not in args:
                    args[name] = arg.default
        elif node.kind == "graph":
            decls = (self.blocks.get(node.op) or {}).get("params") if not node.repeat else None
            for name, decl in (decls.items() if isinstance(decls, dict) else ()):
                literal = not (isinstance(decl, str) and (decl in _TYPE_DECLS or "$" in decl))
                if literal and name not in args:
                    args[name] = decl
        self._args[node.path] = out = {k: _plain(v) for k, v in args.items()}
        return out

    def params(self, node: Node) -> int:
        if node.path not in self._params:
            result = self.result(node)
            own = 0
            if result is not None and result.layer is not None and node.shared is None:
                own = sum(p.numel() for p in result.layer.parameters())
            self._params[node.path] = own + sum(self.params(c) for c in children(node))
        return self._params[node.path]

    def macs(self, node: Node) -> int:
        result = self.result(node)
        return result.macs if result is not None else 0

    def shapes(self, node: Node) -> list:
        result = self.result(node)
        return [list(o.shape) for o in result.outputs] if result is not None else []

    def in_shapes(self, node: Node) -> list:
        result = self.result(node)
        return [list(i.shape) for i in result.inputs] if result is not None else []

    def sig(self, node: Node) -> int:
        """An id equal for two nodes (of either spec) with the same op, arguments, shapes and
        contents, whatever their own name and inputs."""
        if node.path not in self._sig:
            result = self.result(node)
            shapes = tuple((o.shape, o.dtype) for o in result.outputs) if result else None
            ins = tuple(i.shape for i in result.inputs) if result else None
            body = None
            kids = children(node)
            if kids:
                body = (tuple((c.name, _refs(c.inputs), self.sig(c)) for c in kids),
                        tuple((k, str(v)) for k, v in node.body.outputs.items()))
            key = (node.kind, node.op, repr(sorted(self.args(node).items())), node.repeat,
                   node.share, repr(sorted(node.tie.items())), shapes, ins, body)
            self._sig[node.path] = self.table.setdefault(key, len(self.table))
        return self._sig[node.path]


def children(node: Node) -> list[Node]:
    """The nodes inside a node (none for a node that reuses another's module)."""
    return node.body.nodes if node.body is not None and node.shared is None else []


class _Differ:
    def __init__(self, a: Shaped, b: Shaped):
        table: dict = {}
        self.A, self.B = _Side(a, table), _Side(b, table)
        self.status: dict[str, str] = {}
        self.renames: dict[str, str] = {}
        self.pairs: dict[str, str] = {}
        self.added: list[Group] = []
        self.removed: list[Group] = []
        self.changes: list[NodeChange] = []
        self.network = ""

    # the graphs, level by level ------------------------------------------------------------
    def graph(self, ga: Graph, gb: Graph, depth: int) -> tuple[int, bool]:
        """Diff two bodies; returns (nodes not unchanged inside, anything structural inside)."""
        pairs, gone, new = self.match(ga.nodes, gb.nodes)
        names = {a.name: b.name for a, b in pairs}
        a_names = {n.name for n in ga.nodes}
        inner, structural = 0, bool(gone or new)
        for a, b in pairs:
            n, s = self.pair(a, b, names, a_names, depth)
            inner, structural = inner + n, structural or s
        for node in gone:
            inner += self.mark(node, REMOVED)
        for node in new:
            inner += self.mark(node, ADDED)
        self.groups(gone, REMOVED, self.A)
        self.groups(new, ADDED, self.B)
        return inner, structural

    def match(self, na: list[Node], nb: list[Node]):
        """Pairs (A node, B node) in B's order, A's unmatched nodes, B's unmatched nodes."""
        by_name = {n.name: n for n in na}
        named = [(by_name[b.name], b) for b in nb if b.name in by_name]
        if len(named) == len(na) == len(nb) and all(
                self.A.sig(a) == self.B.sig(b) for a, b in named):
            return named, [], []  # the common case: nothing moved
        pairs = named
        if _all_numbered(na) and _all_numbered(nb) and len(na) * len(nb) <= _MAX_LCS:
            aligned = _align([self.A.sig(n) for n in na], [self.B.sig(n) for n in nb])
            same = sum(self.A.sig(a) == self.B.sig(b) for a, b in named)
            if len(aligned) > same:  # the alignment explains more than the numbering
                pairs = [(na[i], nb[j]) for i, j in aligned]
                used_a, used_b = {id(a) for a, _ in pairs}, {id(b) for _, b in pairs}
                pairs += [(a, b) for a, b in named if id(a) not in used_a and id(b) not in used_b
                          and a.op == b.op]
        used_a, used_b = {id(a) for a, _ in pairs}, {id(b) for _, b in pairs}
        gone = [n for n in na if id(n) not in used_a]
        new = [n for n in nb if id(n) not in used_b]
        if gone and new:  # renames: same op, arguments, shapes and contents, other name
            free: dict[int, list[Node]] = {}
            for n in gone:
                free.setdefault(self.A.sig(n), []).append(n)
            for b in list(new):
                candidates = free.get(self.B.sig(b))
                if candidates:
                    a = candidates.pop(0)
                    pairs.append((a, b))
                    gone.remove(a)
                    new.remove(b)
        order = {id(b): i for i, b in enumerate(nb)}
        pairs.sort(key=lambda p: order[id(p[1])])
        return pairs, gone, new

    def pair(self, a: Node, b: Node, names: dict, a_names: set, depth: int) -> tuple[int, bool]:
        A, B = self.A, self.B
        self.pairs[b.path] = a.path
        if a.path != b.path:
            self.renames[a.path] = b.path
        renamed = a.name != b.name
        change = NodeChange(b.path, a.path, b.op, depth, self.network)
        if (a.kind, a.op) != (b.kind, b.op):
            change.op_a = a.op
        if change.op_a is None:
            old, new = A.args(a), B.args(b)
            change.args = {k: (old.get(k), new.get(k)) for k in {**old, **new}
                           if old.get(k) != new.get(k)}
        if a.share != b.share:
            change.args["share"] = (a.share, b.share)
        if a.tie != b.tie:
            change.args["tie"] = (a.tie or None, b.tie or None)
        if a.repeat != b.repeat:
            change.repeat = (a.repeat, b.repeat)
        old_in = [_map_ref(r, names, a_names) for r in a.inputs]
        if old_in != [str(r) for r in b.inputs]:
            change.inputs = ([str(r) for r in a.inputs], [str(r) for r in b.inputs])
        ka, kb = children(a), children(b)
        sa, sb = A.shapes(a), B.shapes(b)
        if sa != sb:
            change.shapes = (sa, sb)
        elif A.in_shapes(a) != B.in_shapes(b):
            change.in_shapes = (A.in_shapes(a), B.in_shapes(b))
        change.params = (A.params(a), B.params(b))
        change.macs = (A.macs(a), B.macs(b))
        slot = len(self.changes)
        if A.sig(a) == B.sig(b):  # same contents: only the name or the inputs can differ
            self.mark_same(a, b)
            structural = False
            change.inner = 0
        elif ka and kb:
            change.inner, structural = self.graph(a.body, b.body, depth + 1)
            if change.repeat is None:  # a repeat's output is its last child: not news
                change.outputs = self.outputs(a.body, b.body)
        else:  # one side has contents the other lacks (op changed): they come and go with it
            change.inner = sum(self.mark(c, REMOVED) for c in ka) + \
                sum(self.mark(c, ADDED) for c in kb)
            structural = bool(ka or kb)
        change.structural = change.own or structural
        differs = (change.own or change.shapes or change.in_shapes or change.inner
                   or change.params[0] != change.params[1] or change.macs[0] != change.macs[1])
        if renamed:
            self.status[b.path] = RENAMED
        elif differs:
            self.status[b.path] = CHANGED
        else:
            self.status[b.path] = RENAMED if a.path != b.path else UNCHANGED
        if differs:
            self.changes.insert(slot, change)  # listed before its insides
        return (1 if differs or a.path != b.path else 0) + change.inner, \
            change.structural or renamed

    def _names(self, ga: Graph, gb: Graph):
        a_paths = {n.path: n.name for n in ga.nodes}
        for n in gb.nodes:
            pa = self.pairs.get(n.path)
            if pa in a_paths:
                yield a_paths[pa], n.name

    def outputs(self, ga: Graph, gb: Graph) -> tuple[dict, dict] | None:
        """A graph's declared outputs, if they point elsewhere (renamed nodes followed)."""
        names = dict(self._names(ga, gb))
        siblings = {n.name for n in ga.nodes}
        old = {k: _map_ref(v, names, siblings) for k, v in ga.outputs.items()}
        new = {k: str(v) for k, v in gb.outputs.items()}
        return None if old == new else ({k: str(v) for k, v in ga.outputs.items()}, new)

    def mark_same(self, a: Node, b: Node) -> None:
        """Identical contents: pair the descendants by name."""
        for ca, cb in zip(children(a), children(b)):
            self.pairs[cb.path] = ca.path
            if ca.path != cb.path:
                self.renames[ca.path] = cb.path
            self.status[cb.path] = RENAMED if ca.path != cb.path else UNCHANGED
            self.mark_same(ca, cb)

    def mark(self, node: Node, status: str) -> int:
        path = node.path
        self.status[path] = status
        return 1 + sum(self.mark(c, status) for c in children(node))

    def groups(self, nodes: list[Node], kind: str, side: _Side) -> None:
        """Added/removed siblings as report items: numbered runs with one op are one item."""
        out = self.added if kind == ADDED else self.removed
        runs: list[list[Node]] = []
        for node in nodes:
            last = runs[-1][-1] if runs else None
            if last is not None and last.op == node.op and same_run(node.name, last.name):
                runs[-1].append(node)
            else:
                runs.append([node])
        for run in runs:
            parent = run[0].path.rpartition(".")[0]
            label = run[0].path if len(run) == 1 else (f"{parent}." if parent else "") + \
                run_label([n.name for n in run])
            out.append(Group(kind, label, run[0].op, [n.path for n in run],
                             sum(side.params(n) for n in run), sum(side.macs(n) for n in run),
                             self.network))


# ---- the result -------------------------------------------------------------------------------

def diff_specs(a: Shaped, b: Shaped) -> DiffResult:
    """Compare spec A (old) with spec B (new): nodes, edges, shapes, parameters, MACs, weights."""
    d = _Differ(a, b)
    nets_a, nets_b = a.spec.networks, b.spec.networks
    if not a.spec.multi and not b.spec.multi:
        matched = [(next(iter(nets_a)), next(iter(nets_b)))]
    else:
        matched = [(n, n if n in nets_b else None) for n in nets_a]
        matched += [(None, n) for n in nets_b if n not in nets_a]
    networks = []
    for name_a, name_b in matched:
        ga, gb = nets_a.get(name_a) if name_a else None, nets_b.get(name_b) if name_b else None
        d.network = name_b or name_a or ""
        net = NetworkDiff(name_a if ga else None, name_b if gb else None,
                          (_total_params([ga], a), _total_params([gb], b)),
                          (_total_macs(ga, a), _total_macs(gb, b)))
        if ga is not None and gb is not None:
            d.graph(ga, gb, 0)
            ia, ib = a.inputs.get(name_a, {}), b.inputs.get(name_b, {})
            for k in {**ia, **ib}:
                old, new = (list(ia[k].shape) if k in ia else None,
                            list(ib[k].shape) if k in ib else None)
                if old != new:
                    net.inputs[k] = (old, new)
            net.outputs = d.outputs(ga, gb)
        else:
            graph, side, kind = (gb, d.B, ADDED) if gb is not None else (ga, d.A, REMOVED)
            for node in graph.nodes:
                d.mark(node, kind)
            (d.added if kind == ADDED else d.removed).append(Group(
                kind, d.network, "network", [n.path for n in graph.nodes],
                sum(side.params(n) for n in graph.nodes), sum(side.macs(n) for n in graph.nodes),
                d.network))
        networks.append(net)
    params = (_total_params(list(nets_a.values()), a), _total_params(list(nets_b.values()), b))
    macs = (sum(n.macs[0] for n in networks), sum(n.macs[1] for n in networks))
    weights = weight_transfer(a, b, d.renames, d.added, d.removed)
    return DiffResult(a.spec.name, b.spec.name, d.status, d.renames, d.added, d.removed,
                      d.changes, networks, params, macs, weights, d.pairs,
                      a.spec.file, b.spec.file, a.spec.multi or b.spec.multi)


def _total_params(graphs: list[Graph | None], shaped: Shaped) -> int:
    seen: set[int] = set()
    return sum(node_params(n, shaped, seen) for g in graphs if g is not None for n in g.nodes)


def _total_macs(graph: Graph | None, shaped: Shaped) -> int:
    if graph is None:
        return 0
    return sum(shaped.nodes[n.path].macs for n in graph.nodes if n.path in shaped.nodes)


# ---- helpers ----------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """A JSON-friendly, comparable form of an argument value."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Deferred):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _refs(refs: list[Ref]) -> tuple[str, ...]:
    return tuple(str(r) for r in refs)


def _map_ref(ref: Ref, names: dict[str, str], siblings: set[str]) -> str:
    """An input of an A node as it would read in B: renamed siblings renamed, removed ones marked."""
    if ref.node in names:
        node = names[ref.node]
    elif ref.node in siblings:
        node = f"<removed {ref.node}>"
    else:
        node = ref.node  # a graph input
    return f"{node}.{ref.output}" if ref.output else node


def _all_numbered(nodes: list[Node]) -> bool:
    return bool(nodes) and all(n.name.isdigit() for n in nodes)


def _align(a: list[int], b: list[int]) -> list[tuple[int, int]]:
    """Index pairs of a longest common subsequence of two signature lists."""
    n, m = len(a), len(b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = table[i], table[i + 1]
        for j in range(m - 1, -1, -1):
            row[j] = below[j + 1] + 1 if a[i] == b[j] else max(below[j], row[j + 1])
    out, i, j = [], 0, 0
    while i < n and j < m:
        if a[i] == b[j]:
            out.append((i, j))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return out
