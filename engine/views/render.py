"""Diagrams in the style of papers, laid out by Graphviz from the shaped graph (no weights).

Top to bottom; each primitive in its paper shorthand (`3x3 conv, 128, /2`, from the block's
`label()`) with parameters and MACs on a quieter second line; repeats collapsed into one shaded
box (`layer3 · bottleneck ×6`) unless `--expand`ed; spec blocks as clusters up to `--depth`;
residual sums as small `+` nodes with the skip edge drawn; tensor shapes on the edges where they
change; shared and tied weights marked by dotted edges; a legend of the colours used
(Okabe-Ito tints, safe for colour-blind readers). Beyond MAX_CLUSTERS open blocks the deepest
levels stay collapsed boxes, and a note says so: Graphviz's cluster layout stops scaling there.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from engine.blocks.registry import lookup
from engine.compiler.ir import Graph, Node, Shaped, TensorInfo, located_error
from engine.views.summary import human, node_params

# a block's category (its family, `category=` at @register) -> (fill, border, legend text):
# light tints of the Okabe-Ito colours, deeper tints and white fills for the families beyond
# the first eight hues. The legend lists them in this order.
PALETTE = {
    "conv": ("#cce3f1", "#0072b2", "convolution"),
    "linear": ("#fbe7c0", "#e69f00", "fully connected / embedding"),
    "norm": ("#c4e9dc", "#009e73", "normalisation"),
    "activation": ("#fbf6c8", "#b8a900", "activation"),
    "pool": ("#dceffb", "#56b4e9", "pooling"),
    "resample": ("#ffffff", "#56b4e9", "resampling (upsample, pixel shuffle)"),
    "attention": ("#f6d5c2", "#d55e00", "attention"),
    "transformer": ("#eeb38f", "#d55e00", "transformer layer"),
    "recurrent": ("#8fc1e0", "#0072b2", "recurrent (RNN, LSTM, GRU)"),
    "encoding": ("#ffffff", "#e69f00", "position / time / label encoding"),
    "latent": ("#80cfb9", "#009e73", "latent (codebook, sampling)"),
    "style": ("#f3cf80", "#e69f00", "style / conditioning"),
    "color": ("#f7f1a0", "#b8a900", "colour transform"),
    "regularize": ("#f3dce9", "#cc79a7", "dropout / drop path"),
    "tensor_ops": ("#eeeeee", "#8c8c8c", "reshaping"),
    "merge": ("#ffffff", "#444444", "merge (+, ×, concat)"),
    "parameter": ("#ffffff", "#cc79a7", "learned tensor"),
    "block": ("#e4e4e4", "#555555", "block (collapsed)"),
}
DIFF_COLOURS = {  # status -> (fill, border, font)
    "added": ("#cce3f1", "#0072b2", "#000000"),
    "removed": ("#f6d5c2", "#d55e00", "#000000"),
    "changed": ("#fbe7c0", "#e69f00", "#000000"),
    "renamed": ("#f3dce9", "#cc79a7", "#000000"),
    "unchanged": ("#f4f4f4", "#bbbbbb", "#8c8c8c"),
}
ROUND_OPS = {"add": "+", "mul": "×"}
# Graphviz's `dot` lays clusters out in superlinear time: a chain of blocks of 5 layers took
# 0.9 s with 100 clusters, 4.4 s with 200 and about a minute with 1,000, while the same boxes
# without clusters took 0.1 s. Past this many, blocks are drawn collapsed, deepest levels first.
MAX_CLUSTERS = 100
HEADER = """digraph {name} {{
  graph [rankdir=TB, nodesep=0.25, ranksep=0.32, fontname="Helvetica", fontsize=12,
         labeljust=l, newrank=true];
  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, penwidth=1.2,
        margin="0.12,0.05", height=0.3];
  edge [color="#555555", arrowsize=0.6, fontname="Helvetica", fontsize=9, fontcolor="#666666"];"""


@dataclass
class _Out:
    """Where a value comes from in the drawing, and its shape."""

    dot_id: str
    info: TensorInfo
    changed: bool  # the shape differs from the producer's input: label the edge with it


class _Renderer:
    def __init__(self, shaped: Shaped, depth: int, expand: list[str],
                 status: dict[str, str] | None = None):
        self.shaped, self.depth, self.status = shaped, depth, status
        self.expand = {p for path in expand for p in _prefixes(path)}
        self.levels: int | None = None  # blocks open only above this level (None: no limit)
        self.note = self.limit_clusters()
        self.lines: list[str] = []
        # Edges go after all nodes, outside every cluster: Graphviz puts a node into the first
        # cluster that mentions it, so an edge written inside one would pull its source in.
        self.edges: list[str] = []
        self.used: set[str] = set()
        self.ids: dict[str, str] = {}  # node path -> dot id of its box (for shared-weight edges)
        self.dot_ids: dict[str, str] = {}  # what a dot id stands for -> the id, one per thing
        self.taken: set[str] = set()  # the ids in dot_ids

    # ---- the document ---------------------------------------------------------------------
    def document(self) -> str:
        spec = self.shaped.spec
        self.lines.append(HEADER.format(name=_quote(spec.name)))
        for name, graph in spec.networks.items():
            if spec.multi:
                self.lines.append(f'  subgraph "cluster_net_{name}" {{ label=<<B>{_h(name)}</B>>; '
                                  'style=rounded; color="#999999";')
            self.network(name, graph)
            if spec.multi:
                self.lines.append("  }")
        self.legend()
        self.lines += self.edges
        self.lines.append("}")
        return "\n".join(self.lines) + "\n"

    def network(self, name: str, graph: Graph) -> None:
        env: dict[str, list[_Out]] = {}
        for inp, info in self.shaped.inputs[name].items():
            dot_id = self.dot_id(f"{name}:in:{inp}")
            self.lines.append(f'  "{dot_id}" [shape=oval, style=filled, fillcolor="#ffffff", '
                              f'label=<<B>{_h(inp)}</B><BR/>{_shape(info)}>];')
            env[inp] = [_Out(dot_id, info, True)]
        env = self.graph(graph, env, 0)
        for out_name, ref in graph.outputs.items():
            dot_id = self.dot_id(f"{name}:out:{out_name}")
            source = self.lookup(env, ref.node, ref.output, graph)
            self.lines.append(f'  "{dot_id}" [shape=oval, style=filled, fillcolor="#ffffff", '
                              f'label=<<B>{_h(out_name)}</B><BR/>{_shape(source.info)}>];')
            self.edge(source, dot_id, force_label=True)

    def graph(self, graph: Graph, env: dict[str, list[_Out]], level: int) -> dict:
        env = dict(env)
        for node in graph.nodes:
            sources = [self.lookup(env, r.node, r.output, graph) for r in node.inputs]
            if node.kind == "pass" or node.path not in self.shaped.nodes:
                if sources:
                    env[node.name] = [sources[0]]
                continue
            env[node.name] = (self.cluster(node, sources, level) if self.is_open(node, level)
                              else self.box(node, sources))
        return env

    def lookup(self, env: dict, name: str, output: str | None, scope: Graph) -> _Out:
        outs = env[name]
        if output is None or len(outs) == 1:
            return outs[0]
        # output names live on the node's shape result, keyed by its full path in the scope
        path = next((n.path for n in scope.nodes if n.name == name), name)
        result = self.shaped.nodes.get(path)
        names = result.output_names if result else ()
        return outs[names.index(output) if output in names else int(output)]

    def is_open(self, node: Node, level: int) -> bool:
        if node.kind != "graph" or node.shared is not None or node.body is None:
            return False
        if node.path in self.expand:
            return True
        if self.levels is not None and level >= self.levels:
            return False
        if self.status is not None:  # a diff opens exactly what holds a change
            return self.status.get(node.path) == "changed"
        return node.repeat == 0 and level + 1 < self.depth

    def limit_clusters(self) -> str | None:
        """Keep the open blocks (clusters) within MAX_CLUSTERS by collapsing the deepest levels;
        the note that says so, or None when every block the options open fits."""
        per_level = self.open_per_level()
        total = sum(per_level)
        if total <= MAX_CLUSTERS:
            return None
        self.levels = 0
        while self.levels < len(per_level) and \
                sum(per_level[:self.levels + 1]) <= MAX_CLUSTERS:
            self.levels += 1
        return (f"{total} blocks would be drawn open, beyond the {MAX_CLUSTERS} that Graphviz's "
                f"cluster layout handles in seconds: drawn with {sum(self.open_per_level())} "
                f"open (as with --depth {self.levels + 1}), the others as collapsed boxes; "
                "--expand PATH opens chosen ones")

    def open_per_level(self) -> list[int]:
        per_level: list[int] = []
        for graph in self.shaped.spec.networks.values():
            self.count_open(graph, 0, per_level)
        return per_level

    def count_open(self, graph: Graph, level: int, per_level: list[int]) -> None:
        """Add the blocks of `graph` that would be drawn open, by nesting level."""
        for node in graph.nodes:
            if node.kind != "pass" and node.path in self.shaped.nodes and \
                    self.is_open(node, level):
                per_level += [0] * (level + 1 - len(per_level))
                per_level[level] += 1
                self.count_open(node.body, level + 1, per_level)

    def dot_id(self, key: str) -> str:
        """The dot id of `key` (a node path, `net:in:x`): `_id(key)`, numbered where two keys
        would share one (`a.b` and `a_b`)."""
        if key not in self.dot_ids:
            dot_id, n = _id(key), 2
            while dot_id in self.taken:  # a set kept alongside: linear in the number of boxes
                dot_id, n = f"{_id(key)}_{n}", n + 1
            self.dot_ids[key] = dot_id
            self.taken.add(dot_id)
        return self.dot_ids[key]

    # ---- drawing ----------------------------------------------------------------------------
    def box(self, node: Node, sources: list[_Out]) -> list[_Out]:
        result = self.shaped.nodes[node.path]
        dot_id = self.dot_id(node.path)
        self.ids[node.path] = dot_id
        title, category = self.title(node, result)
        attrs = self.style(node, category, title)
        self.lines.append(f'  "{dot_id}" [{attrs}];')
        for s in sources:
            self.edge(s, dot_id)
        self.weight_links(node, dot_id)
        first = sources[0].info.shape if sources else None
        return [_Out(dot_id, info, info.shape != first) for info in result.outputs]

    def title(self, node: Node, result) -> tuple[str, str]:
        if node.kind == "graph":
            what = f"{node.op} ×{node.repeat}" if node.repeat else (
                f"{len(node.body.nodes)} layers" if node.op == "seq" and node.body else node.op)
            return f"{_name(node)} · {what}", "block"
        info = lookup(node.op)
        label = result.layer.label() if hasattr(result.layer, "label") else node.op
        if node.spectral_norm:
            label += ", SN"
        if node.kind == "param":
            label = f"{node.name}: {label}"
        category = "parameter" if node.kind == "param" else info.category
        return label, category

    def style(self, node: Node, category: str, title: str) -> str:
        result = self.shaped.nodes[node.path]
        fill, border, _ = PALETTE[category]
        font = "#000000"
        if self.status is not None:
            state = self.status.get(node.path, "unchanged")
            fill, border, font = DIFF_COLOURS[state]
            self.used.add(state)
        else:
            self.used.add(category)
        if node.op in ROUND_OPS and node.kind == "prim":
            return (f'shape=circle, width=0.28, fixedsize=true, fillcolor="{fill}", '
                    f'color="{border}", fontcolor="{font}", label="{ROUND_OPS[node.op]}"')
        detail = _detail(node_params(node, self.shaped), result.macs)
        second = f'<BR/><FONT POINT-SIZE="9" COLOR="#666666">{detail}</FONT>' if detail else ""
        shared = f'<BR/><FONT POINT-SIZE="9" COLOR="#cc79a7">shares {_h(node.share)}</FONT>' \
            if node.share else ""
        style = "rounded,filled,dashed" if node.share else "rounded,filled"
        return (f'style="{style}", fillcolor="{fill}", color="{border}", fontcolor="{font}", '
                f'label=<{_h(title)}{second}{shared}>')

    def cluster(self, node: Node, sources: list[_Out], level: int) -> list[_Out]:
        what = f"{node.op} ×{node.repeat}" if node.repeat else node.op
        params = human(node_params(node, self.shaped))
        fill = "#f7f7f7" if level % 2 == 0 else "#ffffff"
        if self.status is not None:
            fill = "#fffaf0"
        cluster = f"cluster_{self.dot_id(node.path)}"
        self.lines.append(f'  subgraph "{cluster}" {{ label=<{_h(_name(node))} · '
                          f'{_h(what)} · {params}>; style="rounded,filled"; fillcolor="{fill}"; '
                          f'color="#aaaaaa"; fontsize=10;')
        body = node.body
        env = {name: [s] for name, s in zip(body.inputs, sources)}
        env = self.graph(body, env, level + 1)
        self.lines.append("  }")
        return [self.lookup(env, r.node, r.output, body) for r in body.outputs.values()]

    def edge(self, source: _Out, target: str, force_label: bool = False) -> None:
        label = f' [label=" {_shape(source.info)}"]' if source.changed or force_label else ""
        self.edges.append(f'  "{source.dot_id}" -> "{target}"{label};')

    def weight_links(self, node: Node, dot_id: str) -> None:
        """Dotted edges from the node whose weights this one reuses (share) or ties to."""
        links = [(node.shared.path, "same weights")] if node.shared is not None else []
        links += [(t.rpartition(".")[0], f"tied {p}") for p, t in node.tie.items()]
        for path, text in links:
            source = self.ids.get(path) or self.ids.get(_sibling(node, path))
            if source:
                self.edges.append(f'  "{source}" -> "{dot_id}" [style=dotted, color="#cc79a7", '
                                  f'constraint=false, arrowhead=none, label=" {text}", '
                                  'fontcolor="#cc79a7"];')

    def legend(self) -> None:
        if self.status is not None:
            items = [(s, *DIFF_COLOURS[s]) for s in ("added", "removed", "changed", "renamed",
                                                     "unchanged") if s in self.used]
            rows = [(fill, border, name) for name, fill, border, _ in items]
        else:
            rows = [PALETTE[c] for c in PALETTE if c in self.used]
        if not rows:
            return
        cells = "".join(f'<TR><TD BGCOLOR="{fill}" COLOR="{border}" BORDER="1" WIDTH="14"></TD>'
                        f'<TD ALIGN="LEFT">{_h(text)}</TD></TR>' for fill, border, text in rows)
        self.lines.append('  legend [shape=plaintext, style="", fontsize=9, label=<<TABLE '
                          f'BORDER="0" CELLSPACING="2" CELLPADDING="2">{cells}</TABLE>>];')


def render_dot(shaped: Shaped, depth: int = 2, expand: list[str] = (),
               status: dict[str, str] | None = None, notes: list[str] | None = None,
               ids: dict[str, str] | None = None) -> str:
    """The diagram as Graphviz DOT text; `notes` receives what the reader should know (blocks
    left collapsed because there were too many to draw open), also written as DOT comments;
    `ids` receives each drawn thing's dot id, by node path (`net:in:x` for inputs and outputs),
    which Graphviz's SVG keeps as the <title> of its box (the viewer maps clicks with it)."""
    renderer = _Renderer(shaped, depth, list(expand), status)
    dot = renderer.document()
    if ids is not None:
        ids.update(renderer.dot_ids)
    if renderer.note is None:
        return dot
    if notes is not None:
        notes.append(renderer.note)
    return f"// {renderer.note}\n{dot}"


def render_to_file(shaped: Shaped, output: str | Path, fmt: str | None = None, depth: int = 2,
                   expand: list[str] = (), notes: list[str] | None = None) -> Path:
    return write_dot(render_dot(shaped, depth, expand, notes=notes), output, fmt)


def render_diff_to_file(result, a: Shaped, b: Shaped, output: str | Path,
                        fmt: str | None = None, notes: list[str] | None = None) -> Path:
    """B drawn with the diff's colours: added, changed and renamed nodes; removed ones from A."""
    return write_dot(render_diff_dot(result, a, b, notes=notes), output, fmt)


def render_diff_dot(result, a: Shaped, b: Shaped, expand: list[str] = (),
                    notes: list[str] | None = None, ids: dict[str, str] | None = None) -> str:
    """The diff diagram as DOT text (what render_diff_to_file draws); `expand` opens more blocks
    than the changed ones, `ids` receives the dot ids as render_dot gives them (a removed node's
    under `removed:PATH`, PATH being A's)."""
    status = dict(result.status)
    dot = render_dot(b, depth=1, expand=expand, status=status, notes=notes, ids=ids)
    removed = [p for p, s in status.items() if s == "removed"
               and status.get(p.rpartition(".")[0]) != "removed"]
    extra = [_removed_box(a, path) for path in removed]
    if ids is not None:
        ids.update({f"removed:{path}": _id("removed:" + path) for path in removed})
    if extra:  # removed nodes exist only in A: drawn beside B's graph, dashed
        dot = dot.rstrip().removesuffix("}") + "\n".join(extra) + "\n}\n"
    return dot


def _removed_box(a: Shaped, path: str) -> str:
    fill, border, _ = DIFF_COLOURS["removed"]
    return (f'  "{_id("removed:" + path)}" [style="rounded,filled,dashed", fillcolor="{fill}", '
            f'color="{border}", label=<{_h(path)} (removed)>];')


def write_dot(dot: str, output: str | Path, fmt: str | None = None) -> Path:
    output = Path(output)
    fmt = fmt or output.suffix.lstrip(".") or "svg"
    if fmt not in ("svg", "png", "pdf", "dot"):
        raise located_error(f"cannot render to '.{fmt}'", output,
                            hint="use --format svg, png, pdf or dot")
    if fmt == "dot":
        output.write_text(dot, encoding="utf-8")
        return output
    import graphviz
    try:
        data = graphviz.Source(dot).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise located_error("Graphviz's `dot` program is not installed", output,
                            hint="apt-get install graphviz (or brew install graphviz), "
                                 "or write DOT with --format dot") from None
    output.write_bytes(data)
    return output


def _detail(params: int, macs: int) -> str:
    parts = ([f"{human(params)} params"] if params else []) + (
        [f"{human(macs)} MACs"] if macs else [])
    return " · ".join(parts)


def _shape(info: TensorInfo) -> str:
    dims = info.shape[1:] if len(info.shape) > 1 else info.shape
    return "×".join(map(str, dims)) or "scalar"


def _name(node: Node) -> str:
    """A node's name in a diagram: its own, or its path when the name is only a number."""
    return node.path if node.name.isdigit() else node.name


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _sibling(node: Node, name: str) -> str:
    parent = node.path.rpartition(".")[0]
    return f"{parent}.{name}" if parent else name


def _id(path: str) -> str:
    """A readable dot id (always written quoted): letters, digits and `-` kept (`block2-0`),
    anything else `_` (`layer1.0` -> `n_layer1_0`)."""
    return "n_" + "".join(c if c.isalnum() or c == "-" else "_" for c in path)


def _quote(name: str) -> str:
    return '"' + name.replace('"', "'") + '"'


def _h(text: str) -> str:
    return html.escape(str(text), quote=True)
