"""The per-node table printed by `engine build`: path, op, output shape, parameters, with totals."""

from __future__ import annotations

from engine.ir import Graph, Node
from engine.shapes import Shaped


def node_params(node: Node, shaped: Shaped, seen: set[int] | None = None) -> int:
    """Parameters owned by a node and its children, each tensor counted once."""
    seen = set() if seen is None else seen
    result = shaped.nodes.get(node.path)
    total = 0
    if result is not None and result.module is not None and not node.share:
        for p in result.module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
    if node.body is not None:
        total += sum(node_params(child, shaped, seen) for child in node.body.nodes)
    return total


def rows(graph: Graph, shaped: Shaped, depth: int, level: int = 0) -> list[tuple[str, ...]]:
    out = []
    for node in graph.nodes:
        result = shaped.nodes.get(node.path)
        shape = " ".join(str(list(o.shape)) for o in result.outputs) if result else "?"
        op = f"{node.op} (shared: {node.share})" if node.share else node.op
        out.append(("  " * level + node.path.rpartition(".")[2] if level else node.path, op,
                    shape, f"{node_params(node, shaped):,}"))
        if node.body is not None and level + 1 < depth:
            out += rows(node.body, shaped, depth, level + 1)
    return out


def format_table(shaped: Shaped, depth: int = 2, total: int | None = None) -> str:
    lines = []
    for name, graph in shaped.spec.networks.items():
        if shaped.spec.multi:
            lines.append(f"== {name} ==")
        inputs = ", ".join(f"{k}: {list(v.shape)}" for k, v in shaped.inputs[name].items())
        lines.append(f"inputs: {inputs}")
        table = [("node", "op", "output shape", "params"), *rows(graph, shaped, depth)]
        widths = [max(len(r[i]) for r in table) for i in range(4)]
        for i, row in enumerate(table):
            lines.append("  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]),
                                    row[2].ljust(widths[2]), row[3].rjust(widths[3])]).rstrip())
            if i == 0:
                lines.append("-" * (sum(widths) + 6))
        seen: set[int] = set()
        net_total = sum(node_params(n, shaped, seen) for n in graph.nodes)
        lines.append(f"{'total parameters':<{sum(widths[:3]) + 4}}  {net_total:>{widths[3]},}")
        lines.append("")
    if total is not None:
        lines.append(f"{total:,} parameters")
    return "\n".join(lines)
