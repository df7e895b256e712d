"""Liveness of a generated forward: where each intermediate is last read, so the forward can
`del` it there instead of holding every intermediate until it returns, and which adds may
overwrite an operand that nothing else reads (`out += identity`, as torchvision writes it).

Both writers of forwards use it: the compiled modules (engine/compiler/build.py) and the
`engine codegen` files (engine/views/codegen/bodies.py). Neither changes a value: a `del` only
drops a name, and `x.add_(y)` computes the very sum `x + y` does, into x's memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.compiler.ir import Graph, Node, Ref, Shaped


@dataclass(frozen=True)
class Step:
    """One statement of a forward: the variable it assigns (None: nothing to free later, such
    as a parameter's alias) and the local variables it reads."""

    target: str | None
    reads: frozenset[str]


def frees(steps: list[Step], keep: Iterable[str]) -> list[list[str]]:
    """For each step, the variables to `del` after it: those assigned by a step and read for
    the last time there (or never read), except `keep` (what the forward returns). The last step
    frees nothing: returning frees everything anyway."""
    kept = set(keep)
    last: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.target is not None and step.target not in kept:
            last[step.target] = i  # assigned: live at least until here
        for name in step.reads:
            if name in last:
                last[name] = i
    out: list[list[str]] = [[] for _ in steps]
    for name, i in last.items():
        if i < len(steps) - 1:
            out[i].append(name)
    return out


def with_frees(lines: list[str], freed: list[list[str]]) -> list[str]:
    """`lines` with `del a, b` after each line that last reads `a` and `b`."""
    out = []
    for line, names in zip(lines, freed):
        out.append(line)
        if names:
            out.append(f"del {', '.join(names)}")
    return out


# ---- in place -----------------------------------------------------------------------------------

def inplace_operands(graph: Graph, shaped: Shaped) -> dict[str, int]:
    """Node name -> the operand its op may overwrite, for each node whose block declares an
    in-place method (`Add.inplace_method`) and one of whose operands the graph proves free to
    overwrite (`_overwritable`)."""
    readers = readers_of(graph)
    found: dict[str, int] = {}
    for node in graph.nodes:
        result = shaped.nodes.get(node.path)
        if node.kind != "prim" or result is None or not _inplace_method(result.module):
            continue
        if not _same_shapes(result):
            continue
        # x + y == y + x exactly (IEEE addition commutes): either operand of two may take it
        for index in (0, 1) if len(node.inputs) == 2 else (0,):
            if _overwritable(graph, shaped, node.inputs[index], readers):
                found[node.name] = index
                break
    return found


def inplace_expression(module, refs: list[str], index: int) -> str:
    """`refs[index].add_(a).add_(b)`: the op of `module` run in place on operand `index`."""
    method = _inplace_method(module)
    rest = [r for i, r in enumerate(refs) if i != index]
    return refs[index] + "".join(f".{method}({r})" for r in rest)


def _inplace_method(module) -> str | None:
    return getattr(type(module), "inplace_method", None)


def _same_shapes(result) -> bool:
    """Every operand has the output's shape and dtype, so nothing broadcasts into the one
    overwritten. The shape stage runs at B = 1, so a size of 1 could be a broadcast at another
    batch or image size: only the batch dim may be 1."""
    if len(result.outputs) != 1:
        return False
    out = result.outputs[0]
    if any(d == 1 for d in out.shape[1:]):
        return False
    return all(t.shape == out.shape and t.dtype == out.dtype for t in result.inputs)


def _overwritable(graph: Graph, shaped: Shaped, ref: Ref, readers: dict[str, int]) -> bool:
    """Whether the value `ref` names may be overwritten: made in this graph by a block whose
    output is a fresh tensor its backward does not save (`overwritable_output`: conv, linear,
    batch norm, add, mul; not a ReLU or sigmoid, which save their output), through dropouts and
    drop paths (`_passes_through`), read by this one reference only (no other node, no graph output), and
    computed from a graph input (a value made from parameters alone may have batch 1 where the
    other operand has batch B)."""
    node = _root(graph, ref)
    while node is not None and _passes_through(graph, shaped, node, readers):
        node = _root(graph, node.inputs[0])  # what it may return: its input
    if node is None or node.kind != "prim" or readers.get(node.name, 0) != 1:
        return False
    result = shaped.nodes.get(node.path)
    if result is None or len(result.outputs) != 1:
        return False
    return bool(getattr(type(result.module), "overwritable_output", False)) and _from_input(graph, node)


def _passes_through(graph: Graph, shaped: Shaped, node: Node, readers: dict[str, int]) -> bool:
    """A dropout or drop path read once: its output is its input itself or a fresh tensor that
    its backward does not save (`overwritable_through`), so it may be overwritten exactly when
    its input may (ConvNeXt's `drop_path(scale * block) + input`)."""
    if node.kind != "prim" or len(node.inputs) != 1 or readers.get(node.name, 0) != 1:
        return False
    result = shaped.nodes.get(node.path)
    return result is not None and bool(getattr(type(result.module), "overwritable_through", False))


def _root(graph: Graph, ref: Ref) -> Node | None:
    """The node whose tensor `ref` is, through pass-throughs; None for a graph input or a pick
    of one output of several."""
    seen = 0
    while ref.output is None and seen <= len(graph.nodes):
        node = graph.node(ref.node)
        if node is None or node.kind != "pass":
            return node
        ref, seen = node.inputs[0], seen + 1
    return None


def readers_of(graph: Graph) -> dict[str, int]:
    """How many references read each node's tensor (pass-throughs counted as their source:
    `drop = conv2` makes the readers of `drop` readers of conv2); graph outputs read too."""
    counts: dict[str, int] = {}
    refs = [r for n in graph.nodes if n.kind != "pass" for r in n.inputs]
    for ref in [*refs, *graph.outputs.values()]:
        while True:  # a pick `x[1]` of a pass-through still reads x's source
            node = graph.node(ref.node)
            if node is None or node.kind != "pass" or not node.inputs:
                break
            ref = node.inputs[0]
        counts[ref.node] = counts.get(ref.node, 0) + 1
    return counts


def _from_input(graph: Graph, node: Node) -> bool:
    """Whether `node` is computed (through the nodes of `graph`) from one of its inputs."""
    todo, seen = [node], set()
    while todo:
        current = todo.pop()
        for ref in current.inputs:
            if ref.node in graph.inputs:
                return True
            source = graph.node(ref.node)
            if source is not None and source.name not in seen:
                seen.add(source.name)
                todo.append(source)
    return False
