"""Per-node summary of a shaped spec: output shapes, parameters, MACs, totals, activation memory.

Computed from the shape stage's meta modules: no weight is allocated. Conventions:
- parameters: each tensor once, however many nodes share or tie it;
- MACs: multiply-accumulates of conv, linear, matmul and attention products for one sample at
  the spec's input shapes (PyTorch's FLOP counter / 2), as torchvision's published GFLOPS;
  a shared module counts once per application;
- activation memory: the bytes of every primitive node's output for the given batch size, what a
  training step keeps for the backward pass if nothing is freed or computed in place.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass, field

import torch

from engine.compiler import collector_paused
from engine.compiler.ir import Graph, Node, Shaped


@dataclass
class Row:
    path: str
    name: str
    op: str
    level: int
    shape: str
    params: int
    macs: int
    repeat: int = 0


@dataclass
class Summary:
    name: str
    rows: list[Row]
    params: int
    trainable: int
    macs: int
    activation_bytes: int
    batch: int
    networks: dict[str, dict] = field(default_factory=dict)


def node_params(node: Node, shaped: Shaped, seen: set | None = None) -> int:
    """Parameters owned by a node and its children, each counted once (`seen`: the (node,
    parameter) pairs counted already, by earlier calls sharing it)."""
    if seen is not None:
        return sum(p.numel() for p, _ in _params(node, shaped, seen))
    # a row, box or card per node asks for every node at every level: each subtree summed once
    memo = shaped.__dict__.setdefault("_node_params", {})
    if node.path not in memo:
        own = sum(p.numel() for p, _ in _own_params(node, shaped))
        below = sum(node_params(child, shaped) for child in node.body.nodes) if node.body else 0
        memo[node.path] = own + below
    return memo[node.path]


def _own_params(node: Node, shaped: Shaped):
    """(parameter, name) of the node's own layer: none for a node sharing another's, and not a
    tied one (its target's tensor, counted there)."""
    result = shaped.nodes.get(node.path)
    if result is None or result.layer is None or node.shared is not None:
        return
    for name, p in _layer_params(result.layer):
        if name not in node.tie:
            yield p, name


def _params(node: Node, shaped: Shaped, seen: set, frozen: bool = False):
    """(parameter, frozen) pairs under a node, each (node, name) once; shared nodes and tied
    parameters are their target's, counted there."""
    frozen = frozen or node.freeze
    result = shaped.nodes.get(node.path)
    for p, name in _own_params(node, shaped):
        # by node, not by tensor: nodes of the same op and arguments share one meta layer
        if (id(result), name) not in seen:
            seen.add((id(result), name))
            yield p, frozen
    if node.body is not None:
        for child in node.body.nodes:
            yield from _params(child, shaped, seen, frozen)


_LAYER_PARAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _layer_params(layer: torch.nn.Module) -> list:
    """A layer's named parameters, listed once: a row per node asks again for every level above
    it, and walking torch's module tree each time was a fifth of a summary."""
    found = _LAYER_PARAMS.get(layer)
    if found is None:
        found = _LAYER_PARAMS[layer] = list(layer.named_parameters())
    return found


def summarize(shaped: Shaped, depth: int = 2, batch: int = 1) -> Summary:
    with collector_paused():  # a row per node: as analyze, linear only without full collections
        return _summarize(shaped, depth, batch)


def _summarize(shaped: Shaped, depth: int, batch: int) -> Summary:
    spec = shaped.spec
    rows, seen, nets = [], set(), {}
    total = trainable = macs = activations = 0
    for name, graph in spec.networks.items():
        pairs = [pr for n in graph.nodes for pr in _params(n, shaped, seen)]
        net_params = sum(p.numel() for p, _ in pairs)
        net_trainable = sum(p.numel() for p, frozen in pairs if not frozen)
        net_macs = sum(shaped.nodes[n.path].macs for n in graph.nodes if n.path in shaped.nodes)
        net_act = batch * _activation_bytes(graph, shaped)
        nets[name] = {"params": net_params, "trainable": net_trainable, "macs": net_macs,
                      "activation_bytes": net_act,
                      "inputs": {k: list(v.shape) for k, v in shaped.inputs[name].items()}}
        rows += _rows(graph, shaped, depth, 0)
        total, trainable = total + net_params, trainable + net_trainable
        macs, activations = macs + net_macs, activations + net_act
    return Summary(spec.name, rows, total, trainable, macs, activations, batch, nets)


def _rows(graph: Graph, shaped: Shaped, depth: int, level: int) -> list[Row]:
    out = []
    for node in graph.nodes:
        result = shaped.nodes.get(node.path)
        shape = " ".join(str(list(o.shape)) for o in result.outputs) if result else "?"
        op = f"{node.op} (shares {node.share})" if node.share else node.op
        out.append(Row(node.path, node.name, op, level, shape, node_params(node, shaped),
                       result.macs if result else 0, node.repeat))
        if node.body is not None and level + 1 < depth:
            out += _rows(node.body, shaped, depth, level + 1)
    return out


def _activation_bytes(graph: Graph, shaped: Shaped) -> int:
    total = 0
    for node in graph.nodes:
        result = shaped.nodes.get(node.path)
        if result is None or node.kind in ("pass", "param"):
            continue
        if node.kind == "graph":
            total += _activation_bytes(node.shared.body if node.shared else node.body, shaped)
            continue
        for out in result.outputs:
            size = _element_size(out.dtype)
            total += size * _numel(out.shape) // max(out.shape[0], 1) if out.shape else size
    return total


@functools.cache
def _element_size(dtype: str) -> int:
    """Bytes per element of a dtype name (`float32` -> 4), asked of torch once per name."""
    return torch.empty((), dtype=getattr(torch, dtype)).element_size()


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def human(n: float, unit: str = "") -> str:
    """4089184256 -> '4.09 G'."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {suffix}{unit}"
    return f"{n:g} {unit}".rstrip()


def format_summary(summary: Summary) -> str:
    header = ("node", "op", "output shape", "params", "MACs")
    table = [header] + [("  " * r.level + (r.name if r.level else r.path),
                         f"{r.op} x{r.repeat}" if r.repeat else r.op, r.shape,
                         f"{r.params:,}", human(r.macs) if r.macs else "-") for r in summary.rows]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    lines = []
    for i, row in enumerate(table):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2]),
                 row[3].rjust(widths[3]), row[4].rjust(widths[4])]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("-" * (sum(widths) + 8))
    frozen = summary.params - summary.trainable
    lines += [
        "",
        f"parameters      {summary.params:>16,}  ({summary.trainable:,} trainable, {frozen:,} frozen)",
        f"MACs            {summary.macs:>16,}  ({human(summary.macs)} per sample)",
        f"activations     {summary.activation_bytes:>16,}  bytes at batch {summary.batch} "
        f"({human(summary.activation_bytes, 'B')})",
    ]
    return "\n".join(lines)


def summary_json(summary: Summary) -> dict:
    return {"name": summary.name, "params": summary.params, "trainable": summary.trainable,
            "macs": summary.macs, "activation_bytes": summary.activation_bytes,
            "batch": summary.batch, "networks": summary.networks,
            "nodes": [r.__dict__ for r in summary.rows]}
