"""The weight-transfer report: state_dict keys and shapes of A against B's, read from the shape
stage's meta modules (nothing is allocated)."""

from __future__ import annotations

from engine.compiler.ir import Shaped
from engine.compiler.walk import iter_nodes
from engine.views.diff.records import Group, WeightTransfer


def state_entries(shaped: Shaped) -> dict[str, list[int]]:
    """state_dict key -> shape of the model `build(shaped)` makes, from the meta modules."""
    out: dict[str, list[int]] = {}
    for graph in shaped.spec.networks.values():
        for node in iter_nodes(graph):
            result = shaped.nodes.get(node.path)
            if result is None or result.layer is None or node.shared is not None:
                continue
            if node.kind == "param":
                out[node.path] = list(result.layer.weight.shape)
                continue
            for key, tensor in result.layer.state_dict(keep_vars=True).items():
                out[f"{node.path}.{key}"] = list(tensor.shape)
    return out


def weight_transfer(a: Shaped, b: Shaped, renames: dict[str, str], added: list[Group],
                    removed: list[Group]) -> WeightTransfer:
    """Which state_dict entries of A load into B: same key and shape, or under a renamed node's new
    path (`renames`, from the matcher); new and dropped entries grouped by the added and removed
    nodes they belong to."""
    ea, eb = state_entries(a), state_entries(b)
    result = compare_entries(ea, eb)
    for key, shape in ea.items():  # entries whose node was renamed: load under the new key
        moved = _under(key, renames)
        if moved is not None:
            target = renames[moved] + key[len(moved):]
            if eb.get(target) == shape:
                result.renamed[key] = target
    for kind, entries, groups in (("new", result.new, added), ("dropped", result.dropped, removed)):
        tops = {p: g.label for g in groups for p in g.paths}
        by_group: dict[str, list[str]] = {}
        for key in entries:
            top = _under(key, tops)
            if top is not None:
                by_group.setdefault(tops[top], []).append(key)
        result.groups[kind] = by_group
    return result


def compare_entries(ea: dict[str, list[int]], eb: dict[str, list[int]]) -> WeightTransfer:
    """state_dict entries (key -> shape) of A against B's, by key, then shape (no renames, no
    groups): also how `weights:` reports what a checkpoint loaded into a model (engine/train/weights.py)."""
    return WeightTransfer(
        unchanged=[k for k, s in ea.items() if eb.get(k) == s],
        changed={k: (s, eb[k]) for k, s in ea.items() if k in eb and eb[k] != s},
        new={k: s for k, s in eb.items() if k not in ea},
        dropped={k: s for k, s in ea.items() if k not in eb})


def _under(key: str, paths: dict) -> str | None:
    """The longest path of `paths` that is `key` or a prefix of it at a dot."""
    parts = key.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in paths:
            return prefix
    return None
