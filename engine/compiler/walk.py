"""Walking the resolved graph: every node, depth first, in spec order."""

from __future__ import annotations

from collections.abc import Iterator

from engine.compiler.ir import Graph, Node, Spec


def iter_nodes(graph: Graph) -> Iterator[Node]:
    for node in graph.nodes:
        yield node
        if node.body is not None:
            yield from iter_nodes(node.body)


def all_nodes(spec: Spec) -> Iterator[Node]:
    for graph in spec.networks.values():
        yield from iter_nodes(graph)


def nodes_by_path(spec: Spec) -> dict[str, Node]:
    return {node.path: node for node in all_nodes(spec)}
