"""The fully resolved spec as plain data, for `engine resolve` (YAML) and golden-file tests."""

from __future__ import annotations

from typing import Any

from engine.compiler.ir import Deferred, Graph, Node, Shaped


def resolved_dict(shaped: Shaped) -> dict[str, Any]:
    spec = shaped.spec
    return {
        "name": spec.name,
        "params": _plain(spec.params),
        "networks": {name: _graph(g, shaped, shaped.inputs.get(name)) for name, g in
                     spec.networks.items()},
        **({"rename": dict(spec.rename)} if spec.rename else {}),
    }


def _graph(graph: Graph, shaped: Shaped, inputs=None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if inputs is not None:
        out["inputs"] = {k: list(v.shape) for k, v in inputs.items()}
    out["nodes"] = {n.name: _node(n, shaped) for n in graph.nodes}
    out["outputs"] = {k: str(v) for k, v in graph.outputs.items()}
    return out


def _node(node: Node, shaped: Shaped) -> dict[str, Any]:
    result = shaped.nodes.get(node.path)
    out: dict[str, Any] = {"op": node.op, "in": [str(r) for r in node.inputs]}
    args = result.args if result is not None and result.args else node.args
    if args:
        out["args"] = _plain(args)
    if node.share:
        out["share"] = node.share
    if result is not None:
        out["shape"] = [list(o.shape) for o in result.outputs] if len(result.outputs) > 1 \
            else list(result.outputs[0].shape)
    if node.body is not None:
        out["body"] = _graph(node.body, shaped)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Deferred):
        return repr(value)
    return value
