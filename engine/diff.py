"""`engine diff A B`: what changed between two specs, and which weights of A load into B.

Both specs are analysed (shapes, no weights); their node trees are matched level by level:
- by name (so by path), as a state_dict would;
- in numbered sequences (`seq:`, repeats), by aligning identical items when that explains more
  than the numbering does (a BatchNorm inserted after every conv renumbers all later items);
- renames: an unmatched node of A and one of B under the same parent with the same op,
  arguments, shapes and contents.

A change is reported at the highest level that explains it: a whole added block is one line,
runs of numbered siblings with the same op are one line (`layer3.6-22: 17 x bottleneck added`),
and a block whose insides changed only because its input shape did is not opened.

The weight-transfer report compares the state_dict keys and shapes of both models, read from
the shape stage's meta modules (nothing is allocated).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from blocks.registry import IN_SIZE, lookup
from engine.ir import Deferred, Graph, Node, Ref
from engine.shapes import Shaped
from engine.summary import human, node_params
from engine.walk import iter_nodes

ADDED, REMOVED, CHANGED, RENAMED, UNCHANGED = "added", "removed", "changed", "renamed", "unchanged"
_NUMBERED = re.compile(r"^(.*?)(\d+)$")
_TYPE_DECLS = {"int", "float", "bool", "str", "list"}
_MAX_LCS = 250_000  # cells of the alignment table; longer sequences are matched by name only
_MAX_LINES = 80  # changed nodes listed in the text before "... N more"
_MAX_KEYS = 20  # state_dict keys listed per category in the text


@dataclass
class Group:
    """Added (or removed) nodes reported as one item: a node, or numbered siblings with one op."""

    kind: str  # "added" | "removed"
    label: str  # "layer3.6-22", "fc", "features.1,4,8"
    op: str
    paths: list[str]  # top paths of the group (B's for added, A's for removed)
    params: int
    macs: int
    network: str = ""

    @property
    def count(self) -> int:
        return len(self.paths)


@dataclass
class NodeChange:
    """A node present in both specs (matched by path, alignment or rename) that differs."""

    path: str  # in B
    path_a: str  # in A (differs when renamed)
    op: str
    depth: int
    network: str = ""
    op_a: str | None = None  # set when the op changed
    args: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (old, new)
    repeat: tuple[int, int] | None = None
    inputs: tuple[list[str], list[str]] | None = None  # edges rewired: (A's inputs, B's inputs)
    outputs: tuple[dict, dict] | None = None  # a graph's declared outputs changed
    shapes: tuple[list, list] | None = None  # output shapes
    in_shapes: tuple[list, list] | None = None  # input shapes (reported when outputs kept theirs)
    params: tuple[int, int] = (0, 0)
    macs: tuple[int, int] = (0, 0)
    inner: int = 0  # descendants not unchanged (changed, added, removed, renamed)
    structural: bool = False  # a definition changed here or below (not only propagated shapes)

    @property
    def own(self) -> bool:
        """Whether the node's own definition changed (op, arguments, repeat count, wiring)."""
        return bool(self.op_a or self.args or self.repeat or self.inputs or self.outputs)


@dataclass
class NetworkDiff:
    name_a: str | None
    name_b: str | None
    params: tuple[int, int]
    macs: tuple[int, int]
    inputs: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (A shape, B shape)
    outputs: tuple[dict, dict] | None = None

    @property
    def name(self) -> str:
        return self.name_b or self.name_a or ""


@dataclass
class WeightTransfer:
    """state_dict entries of A against B's: by key, then shape."""

    unchanged: list[str]  # same key, same shape: loads as is
    changed: dict[str, tuple[list, list]]  # same key, other shape: key -> (A shape, B shape)
    new: dict[str, list]  # only in B: key -> shape
    dropped: dict[str, list]  # only in A: key -> shape
    renamed: dict[str, str] = field(default_factory=dict)  # A key -> B key, loadable via renames
    groups: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # new/dropped by group


@dataclass
class DiffResult:
    a: str
    b: str
    status: dict[str, str]  # node path (B's; A's for removed) -> added/removed/changed/renamed/unchanged
    renames: dict[str, str]  # A path -> B path (renamed nodes and their descendants)
    added: list[Group]
    removed: list[Group]
    changes: list[NodeChange]  # pre-order, B's order
    networks: list[NetworkDiff]
    params: tuple[int, int]
    macs: tuple[int, int]
    weights: WeightTransfer
    pairs: dict[str, str] = field(default_factory=dict)  # B path -> A path of every matched node
    file_a: str = ""
    file_b: str = ""
    multi: bool = False

    @property
    def renamed(self) -> dict[str, str]:
        """The renames as written (a node renamed, not a descendant carried along)."""
        return {a: b for a, b in self.renames.items()
                if a.rpartition(".")[0] not in self.renames}


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
                if name != IN_SIZE and not arg.required and name not in args:
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
            if result is not None and result.module is not None and node.shared is None:
                own = sum(p.numel() for p in result.module.parameters())
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
            m = _NUMBERED.match(node.name)
            last = runs[-1][-1] if runs else None
            lm = _NUMBERED.match(last.name) if last is not None else None
            if m and lm and last.op == node.op and m.group(1) == lm.group(1):
                runs[-1].append(node)
            else:
                runs.append([node])
        for run in runs:
            parent = run[0].path.rpartition(".")[0]
            m = _NUMBERED.match(run[0].name)
            label = run[0].path if len(run) == 1 else (f"{parent}." if parent else "") + \
                m.group(1) + _ranges([int(_NUMBERED.match(n.name).group(2)) for n in run])
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
    return DiffResult(a.spec.name, b.spec.name, d.status, d.renames, d.added, d.removed,
                      d.changes, networks, params, macs, _weights(a, b, d), d.pairs,
                      a.spec.file, b.spec.file, a.spec.multi or b.spec.multi)


def _total_params(graphs: list[Graph | None], shaped: Shaped) -> int:
    seen: set[int] = set()
    return sum(node_params(n, shaped, seen) for g in graphs if g is not None for n in g.nodes)


def _total_macs(graph: Graph | None, shaped: Shaped) -> int:
    if graph is None:
        return 0
    return sum(shaped.nodes[n.path].macs for n in graph.nodes if n.path in shaped.nodes)


def state_entries(shaped: Shaped) -> dict[str, list[int]]:
    """state_dict key -> shape of the model `build(shaped)` makes, from the meta modules."""
    out: dict[str, list[int]] = {}
    for graph in shaped.spec.networks.values():
        for node in iter_nodes(graph):
            result = shaped.nodes.get(node.path)
            if result is None or result.module is None or node.shared is not None:
                continue
            if node.kind == "param":
                out[node.path] = list(result.module.weight.shape)
                continue
            for key, tensor in result.module.state_dict(keep_vars=True).items():
                out[f"{node.path}.{key}"] = list(tensor.shape)
    return out


def _weights(a: Shaped, b: Shaped, d: _Differ) -> WeightTransfer:
    ea, eb = state_entries(a), state_entries(b)
    result = WeightTransfer(
        unchanged=[k for k, s in ea.items() if eb.get(k) == s],
        changed={k: (s, eb[k]) for k, s in ea.items() if k in eb and eb[k] != s},
        new={k: s for k, s in eb.items() if k not in ea},
        dropped={k: s for k, s in ea.items() if k not in eb})
    for key, shape in ea.items():  # entries whose node was renamed: load under the new key
        moved = _under(key, d.renames)
        if moved is not None:
            target = d.renames[moved] + key[len(moved):]
            if eb.get(target) == shape:
                result.renamed[key] = target
    for kind, entries, groups in (("new", result.new, d.added), ("dropped", result.dropped,
                                                                    d.removed)):
        tops = {p: g.label for g in groups for p in g.paths}
        by_group: dict[str, list[str]] = {}
        for key in entries:
            top = _under(key, tops)
            if top is not None:
                by_group.setdefault(tops[top], []).append(key)
        result.groups[kind] = by_group
    return result


def _under(key: str, paths: dict) -> str | None:
    """The longest path of `paths` that is `key` or a prefix of it at a dot."""
    parts = key.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in paths:
            return prefix
    return None


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


def _ranges(numbers: list[int]) -> str:
    """[6, 7, 8, 10] -> '6-8,10' (the first eight ranges, then '...')."""
    parts, start = [], numbers[0]
    for prev, cur in zip(numbers, numbers[1:] + [None]):
        if cur != prev + 1:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = cur
    return ",".join(parts[:8] + (["..."] if len(parts) > 8 else []))


def _signed(n: int) -> str:
    return f"{n:+,}"


def _delta(old: int, new: int, unit: str) -> str:
    d = new - old
    return f"{unit} {_signed(d)}" + (f" ({'+' if d > 0 else '-'}{human(abs(d))})"
                                     if abs(d) >= 1000 else "")


def _value(v: Any) -> str:
    return "-" if v is None else str(v)


def _short(file: str) -> str:
    """A spec's file relative to the working directory when it is below it."""
    try:
        rel = os.path.relpath(file)
    except ValueError:  # another drive
        return file
    return file if rel.startswith("..") else rel


def _shape_text(shapes: list) -> str:
    return ", ".join(str(s) for s in shapes) if len(shapes) != 1 else str(shapes[0])


# ---- text ---------------------------------------------------------------------------------------

def format_diff(result: DiffResult) -> str:
    r = result
    files = f"   ({_short(r.file_a)} -> {_short(r.file_b)})" if r.file_a and r.file_b else ""
    lines = [f"diff {r.a} -> {r.b}{files}"]
    counts: dict[str, int] = {}
    for s in r.status.values():
        counts[s] = counts.get(s, 0) + 1
    lines.append("nodes (every depth): " + ", ".join(
        f"{counts.get(s, 0)} {s}" for s in (UNCHANGED, CHANGED, ADDED, REMOVED, RENAMED)))
    for net in r.networks:
        where = ""
        if r.multi:
            where = net.name
            if net.name_a is None or net.name_b is None:
                continue  # listed with the added/removed groups
            lines += ["", f"== network {where} =="]
        lines += _network_text(r, net, where)
    if r.multi:
        lines += _groups_text([g for g in r.added if g.op == "network"], "added networks")
        lines += _groups_text([g for g in r.removed if g.op == "network"], "removed networks")
    lines += [""] + _weights_text(r.weights)
    lines += ["", "totals (A -> B):",
              f"  params  {r.params[0]:>16,} -> {r.params[1]:>16,}  ({_signed(r.params[1] - r.params[0])})",
              f"  MACs    {r.macs[0]:>16,} -> {r.macs[1]:>16,}  ({_signed(r.macs[1] - r.macs[0])}"
              + (f", {human(r.macs[0])} -> {human(r.macs[1])}"
                 if r.macs[0] != r.macs[1] and max(r.macs) >= 1000 else "")
              + ")"]
    if r.multi:
        for net in r.networks:
            lines.append(f"  {net.name}: params {net.params[0]:,} -> {net.params[1]:,} "
                         f"({_signed(net.params[1] - net.params[0])}), MACs {net.macs[0]:,} -> "
                         f"{net.macs[1]:,} ({_signed(net.macs[1] - net.macs[0])})")
    return "\n".join(lines)


def _network_text(r: DiffResult, net: NetworkDiff, where: str) -> list[str]:
    lines: list[str] = []
    for name, (old, new) in net.inputs.items():
        lines.append(f"input {name}: {_value(old)} -> {_value(new)}")
    if net.outputs is not None:
        lines.append(f"outputs: {net.outputs[0]} -> {net.outputs[1]}")
    added = [g for g in r.added if g.network == where or not r.multi]
    removed = [g for g in r.removed if g.network == where or not r.multi]
    lines += _groups_text([g for g in added if g.op != "network"], "added")
    lines += _groups_text([g for g in removed if g.op != "network"], "removed")
    renamed = {a: b for a, b in r.renamed.items() if not r.multi or b.startswith(where + ".")}
    lines += _renames_text(renamed, r)
    changes = [c for c in r.changes if c.network == where or not r.multi]
    lines += _changes_text(changes)
    if not lines:
        lines.append("no structural change")
    return lines


def _groups_text(groups: list[Group], title: str) -> list[str]:
    if not groups:
        return []
    sign, verb = ("+", "added") if groups[0].kind == ADDED else ("-", "removed")
    lines = ["", f"{title} ({len(groups)}):"]
    for g in groups:
        what = f"{g.count} x {g.op}" if g.count > 1 else f"({g.op})"
        sep = ":" if g.count > 1 else ""
        p = g.params if g.kind == ADDED else -g.params
        m = g.macs if g.kind == ADDED else -g.macs
        lines.append(f"  {sign} {g.label}{sep} {what} {verb}, {_signed(p)} params, "
                     f"{_signed(m)} MACs" + (f" ({sign}{human(g.macs)})" if g.macs >= 1000 else ""))
    return lines


def _renames_text(renamed: dict[str, str], r: DiffResult) -> list[str]:
    if not renamed:
        return []
    lines = ["", f"renamed ({len(renamed)}):"]
    by_parent: dict[str, list[tuple[str, str]]] = {}
    for a, b in renamed.items():
        by_parent.setdefault(b.rpartition(".")[0], []).append((a, b))
    for parent, items in by_parent.items():
        if len(items) > 6:
            shown = ", ".join(f"{a.rpartition('.')[2]} -> {b.rpartition('.')[2]}"
                              for a, b in items[:8])
            more = f", ... ({len(items) - 8} more)" if len(items) > 8 else ""
            lines.append(f"  = {parent or '(top)'}: {len(items)} children renamed or renumbered: "
                         f"{shown}{more}")
        else:
            for a, b in items:
                lines.append(f"  = {a} -> {b}")
    return lines


def _changes_text(changes: list[NodeChange]) -> list[str]:
    if not changes:
        return []
    shown, hidden_under = [], None
    for c in changes:  # a block changed only by its input shape is one line, not opened
        if hidden_under is not None and c.path.startswith(hidden_under):
            continue
        hidden_under = None if c.structural or not c.inner else c.path + "."
        shown.append(c)
    lines = ["", f"changed ({sum(1 for c in changes if c.own)} with new definitions, "
                 f"{len(changes)} in all):"]
    roots: list[_Item] = []
    stack: list[_Item] = []
    for c in shown:
        item = _Item(c, _change_text(c))
        while stack and not c.path.startswith(stack[-1].change.path + "."):
            stack.pop()
        (stack[-1].kids if stack else roots).append(item)
        stack.append(item)
    out: list[str] = []
    parent = shown[0].path.rpartition(".")[0]
    _render(_merge(roots), parent, 0, out)
    lines += out[:_MAX_LINES]
    if len(out) > _MAX_LINES:
        lines.append(f"  ... {len(out) - _MAX_LINES} more lines (--json lists every change)")
    return lines


@dataclass
class _Item:
    """A changed node as the text shows it, with its shown descendants."""

    change: NodeChange
    text: str
    kids: list[_Item] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # numbered siblings merged into this line

    def fingerprint(self) -> tuple:
        base = self.change.path
        return (self.change.op, self.text,
                tuple((k.change.path[len(base):], k.fingerprint()) for k in self.kids))


def _merge(items: list[_Item]) -> list[_Item]:
    """Consecutive numbered siblings with the same changes become one line."""
    out: list[_Item] = []
    for item in items:
        name = item.change.path.rpartition(".")[2]
        item.names = [name]
        item.kids = _merge(item.kids)
        last = out[-1] if out else None
        m, lm = _NUMBERED.match(name), _NUMBERED.match(last.names[-1]) if last else None
        if last is not None and m and lm and m.group(1) == lm.group(1) \
                and last.fingerprint() == item.fingerprint():
            last.names.append(name)
        else:
            out.append(item)
    return out


def _render(items: list[_Item], parent: str, level: int, out: list[str]) -> None:
    for item in items:
        name = item.names[0]
        if len(item.names) > 1:
            name = _NUMBERED.match(name).group(1) + _ranges(
                [int(_NUMBERED.match(n).group(2)) for n in item.names])
        label = f"{parent}.{name}" if parent else name
        c = item.change
        op = f"{c.op} x{c.repeat[1]}" if c.repeat else c.op
        was = f", was {c.path_a}" if c.path_a != c.path else ""
        each = f"{len(item.names)} x, each: " if len(item.names) > 1 else ""
        out.append(f"  {'  ' * level}~ {label} ({op}{was}): {each}{item.text}")
        _render(item.kids, label, level + 1, out)


def _change_text(c: NodeChange) -> str:
    parts = []
    if c.op_a is not None:
        if c.op_a == "pass":
            parts.append("enabled (was a pass-through)")
        elif c.op == "pass":
            parts.append(f"disabled (was {c.op_a}; now passes its input through)")
        else:
            parts.append(f"op {c.op_a} -> {c.op}")
    if c.repeat is not None:
        parts.append(f"repeat {c.repeat[0]} -> {c.repeat[1]}")
    parts += [f"{k} {_value(old)} -> {_value(new)}" for k, (old, new) in c.args.items()]
    if c.inputs is not None:
        parts.append(f"in {', '.join(c.inputs[0]) or '-'} -> {', '.join(c.inputs[1]) or '-'}")
    if c.outputs is not None:
        parts.append(f"outputs {c.outputs[0]} -> {c.outputs[1]}")
    if c.shapes is not None:
        parts.append(f"output {_shape_text(c.shapes[0])} -> {_shape_text(c.shapes[1])}")
    elif c.in_shapes is not None:
        parts.append(f"input {_shape_text(c.in_shapes[0])} -> {_shape_text(c.in_shapes[1])}")
    if c.inner:
        parts.append(f"{c.inner} node{'s' if c.inner > 1 else ''} inside"
                     + ("" if c.structural else " changed (shapes only)"))
    if c.params[0] != c.params[1]:
        parts.append(_delta(*c.params, "params"))
    if c.macs[0] != c.macs[1]:
        parts.append(_delta(*c.macs, "MACs"))
    return "; ".join(parts)


def _weights_text(w: WeightTransfer) -> list[str]:
    lines = ["weight transfer (state_dict of A loaded into B):",
             f"  {len(w.unchanged)} load unchanged, {len(w.changed)} change shape, "
             f"{len(w.new)} new in B, {len(w.dropped)} dropped from A"
             + (f"; {len(w.renamed)} load under the key of their renamed node" if w.renamed else "")]
    if w.changed:
        lines.append("  changed shape:")
        width = max(len(k) for k in list(w.changed)[:_MAX_KEYS])
        lines += [f"    {k.ljust(width)}  {old} -> {new}"
                  for k, (old, new) in list(w.changed.items())[:_MAX_KEYS]]
        lines += _more(len(w.changed))
    for kind, entries, title in (("new", w.new, "new in B"), ("dropped", w.dropped,
                                                               "dropped from A")):
        if not entries:
            continue
        lines.append(f"  {title}:")
        grouped = w.groups.get(kind, {})
        in_groups = {k for keys in grouped.values() for k in keys}
        for label, keys in grouped.items():
            if len(keys) > 3:
                lines.append(f"    {label}: {len(keys)} entries ({keys[0]}, ...)")
            else:
                in_groups -= set(keys)
        rest = [k for k in entries if k not in in_groups]
        lines += [f"    {k}  {entries[k]}" for k in rest[:_MAX_KEYS]]
        lines += _more(len(rest))
    if w.renamed:
        lines.append("  load under a renamed key:")
        lines += [f"    {a} -> {b}" for a, b in list(w.renamed.items())[:_MAX_KEYS]]
        lines += _more(len(w.renamed))
    return lines


def _more(n: int) -> list[str]:
    return [f"    ... and {n - _MAX_KEYS} more (--json lists all)"] if n > _MAX_KEYS else []


# ---- JSON -----------------------------------------------------------------------------------------

def diff_json(result: DiffResult) -> dict:
    r, w = result, result.weights
    return {
        "a": r.a, "b": r.b, "file_a": r.file_a, "file_b": r.file_b,
        "totals": {"params": {"a": r.params[0], "b": r.params[1], "delta": r.params[1] - r.params[0]},
                   "macs": {"a": r.macs[0], "b": r.macs[1], "delta": r.macs[1] - r.macs[0]}},
        "networks": [{"a": n.name_a, "b": n.name_b,
                      "params": {"a": n.params[0], "b": n.params[1]},
                      "macs": {"a": n.macs[0], "b": n.macs[1]},
                      "inputs": {k: {"a": v[0], "b": v[1]} for k, v in n.inputs.items()},
                      "outputs": None if n.outputs is None else
                      {"a": n.outputs[0], "b": n.outputs[1]}} for n in r.networks],
        "added": [_group_json(g) for g in r.added],
        "removed": [_group_json(g) for g in r.removed],
        "renamed": r.renamed,
        "changed": [_change_json(c) for c in r.changes],
        "weights": {"unchanged": w.unchanged,
                    "changed": {k: {"a": a, "b": b} for k, (a, b) in w.changed.items()},
                    "new": w.new, "dropped": w.dropped, "renamed": w.renamed},
        "status": r.status,
        "renames": r.renames,
    }


def _group_json(g: Group) -> dict:
    return {"label": g.label, "op": g.op, "count": g.count, "paths": g.paths,
            "params": g.params, "macs": g.macs, "network": g.network}


def _change_json(c: NodeChange) -> dict:
    out: dict[str, Any] = {"path": c.path, "op": c.op}
    if c.path_a != c.path:
        out["path_a"] = c.path_a
    if c.network:
        out["network"] = c.network
    if c.op_a is not None:
        out["op_a"] = c.op_a
    if c.args:
        out["args"] = {k: {"a": old, "b": new} for k, (old, new) in c.args.items()}
    if c.repeat is not None:
        out["repeat"] = {"a": c.repeat[0], "b": c.repeat[1]}
    if c.inputs is not None:
        out["inputs"] = {"a": c.inputs[0], "b": c.inputs[1]}
    if c.outputs is not None:
        out["outputs"] = {"a": c.outputs[0], "b": c.outputs[1]}
    if c.shapes is not None:
        out["shapes"] = {"a": c.shapes[0], "b": c.shapes[1]}
    if c.in_shapes is not None:
        out["in_shapes"] = {"a": c.in_shapes[0], "b": c.in_shapes[1]}
    out["params"] = {"a": c.params[0], "b": c.params[1], "delta": c.params[1] - c.params[0]}
    out["macs"] = {"a": c.macs[0], "b": c.macs[1], "delta": c.macs[1] - c.macs[0]}
    out["inner"], out["definition_changed"] = c.inner, c.own
    return out
