"""What a viewer page shows, as plain JSON-ready data: one spec (its nodes with shapes,
parameters, MACs, resolved arguments and YAML lines; its params; its diagram) or the diff of two
(the combined diagram, the changes with both sides' YAML, the weight-transfer table).

A spec that does not validate gives its errors as `engine` prints them (file:line, the source
line and a caret), so the page shows the CLI's own text.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.compiler import analyze
from engine.compiler.ir import Node, Shaped, SpecError
from engine.compiler.report import format_all
from engine.compiler.walk import iter_nodes
from engine.views.diff import diff_json, diff_specs, format_diff
from engine.views.summary import node_params
from engine.views.viewer.diagram import default_expand, diff_diagram, openable, spec_diagram
from engine.views.viewer.source import Sources, display_name


@dataclass
class Loaded:
    """A spec analysed with its `--set` overrides: the shaped graph or the errors, and the files
    it was read from (what `--watch` watches)."""

    path: Path
    overrides: tuple[str, ...]
    shaped: Shaped | None = None
    errors: str = ""
    files: set[str] = field(default_factory=set)
    nodes: dict | None = None  # node path -> details, made on first use


def load(path: Path, overrides: tuple[str, ...] = ()) -> Loaded:
    loaded = Loaded(path, tuple(overrides), files={str(path)})
    try:
        loaded.shaped = analyze(str(path), list(overrides))
    except SpecError as err:
        loaded.errors = format_all(err.diagnostics)
        loaded.files |= {d.loc.file for d in err.diagnostics if d.loc and d.loc.line}
        return loaded
    loaded.files |= {os.path.abspath(f) for f in source_files(loaded.shaped)}
    return loaded


def source_files(shaped: Shaped) -> set[str]:
    """Every file a spec's nodes were written in: itself and what it extends and includes."""
    files = {shaped.spec.file}
    for graph in shaped.spec.networks.values():
        for node in iter_nodes(graph):
            locs = [node.loc, *node.arg_locs.values()]
            files |= {loc.file for loc in locs if loc is not None and loc.line}
    return files


def version(files: set[str]) -> str:
    """Changes when any of the files is saved (modification time and size)."""
    parts = []
    for file in sorted(files):
        try:
            st = os.stat(file)
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append("-")
    return str(hash(tuple(parts)) & 0xFFFFFFFFFFFF)


# ---- one spec ---------------------------------------------------------------------------------

def spec_page(loaded: Loaded, spec_id: str, expand: list[str] | None) -> dict:
    """The data of a one-spec page; `expand` None: the blocks engine render opens by default."""
    page = {"kind": "spec", "id": spec_id, "file": display_name(str(loaded.path)),
            "overrides": list(loaded.overrides), "errors": loaded.errors,
            "version": version(loaded.files)}
    if loaded.shaped is None:
        return page
    shaped = loaded.shaped
    expand = default_expand(shaped) if expand is None else expand
    page.update(title=shaped.spec.name, params=_plain(shaped.spec.params),
                nodes=node_table(loaded), totals=_totals(shaped), expand=expand,
                diagram=spec_diagram(shaped, expand))
    return page


def node_table(loaded: Loaded) -> dict:
    """Node path -> what the page shows of it, in pre-order (the table's order)."""
    if loaded.nodes is None:
        sources, shaped = Sources(), loaded.shaped
        loaded.nodes = {}
        for graph in shaped.spec.networks.values():
            for node in iter_nodes(graph):
                loaded.nodes[node.path] = node_info(node, shaped, sources)
    return loaded.nodes


def node_info(node: Node, shaped: Shaped, sources: Sources) -> dict:
    result = shaped.nodes.get(node.path)
    parent = node.path.rpartition(".")[0]
    return {
        "path": node.path, "name": node.name, "op": node.op, "kind": node.kind,
        "parent": parent, "repeat": node.repeat, "share": node.share,
        "block": openable(node) and node.path in shaped.nodes,
        "shape": [list(o.shape) for o in result.outputs] if result else [],
        "params": node_params(node, shaped) if result else 0,
        "macs": result.macs if result else 0,
        "args": _plain(result.args if result and result.args else node.args),
        "source": sources.snippets(node),
    }


def _totals(shaped: Shaped) -> dict:
    seen: set = set()
    params = sum(node_params(n, shaped, seen) for g in shaped.spec.networks.values()
                 for n in g.nodes)
    macs = sum(shaped.nodes[n.path].macs for g in shaped.spec.networks.values()
               for n in g.nodes if n.path in shaped.nodes)
    return {"params": params, "macs": macs}


def stats(loaded: Loaded) -> dict:
    """What the index lists of a spec: its parameters and MACs, or that it has errors."""
    if loaded.shaped is None:
        return {"error": loaded.errors.split("\n", 1)[0]}
    return _totals(loaded.shaped)


# ---- two specs --------------------------------------------------------------------------------

def diff_page(a: Loaded, b: Loaded, ids: tuple[str, str], expand: list[str] | None) -> dict:
    page = {"kind": "diff", "id": ids[1], "id_a": ids[0],
            "file_a": display_name(str(a.path)), "file": display_name(str(b.path)),
            "overrides": list(b.overrides), "overrides_a": list(a.overrides),
            "errors": "\n\n".join(x.errors for x in (a, b) if x.errors),
            "version": version(a.files | b.files)}
    if a.shaped is None or b.shaped is None:
        return page
    result = diff_specs(a.shaped, b.shaped)
    data = diff_json(result)
    nodes = {path: dict(info) for path, info in node_table(b).items()}  # the cache keeps its own
    nodes_a = node_table(a)
    for path, status in result.status.items():
        if status == "removed" and path in nodes_a:
            nodes[f"removed:{path}"] = {**nodes_a[path], "path": f"removed:{path}",
                                        "parent": "", "block": False}
    for path, info in nodes.items():
        info["status"] = result.status.get(path.removeprefix("removed:"), "unchanged")
        pair = result.pairs.get(path)
        info["source_a"] = nodes_a[pair]["source"] if pair in nodes_a else []
    expand = [] if expand is None else expand
    page.update(title=f"{result.a} → {result.b}", title_a=result.a, title_b=result.b,
                nodes=nodes, expand=expand, diagram=diff_diagram(result, a.shaped, b.shaped, expand),
                changes=[_change(c) for c in data["changed"]],
                added=data["added"], removed=data["removed"], renamed=data["renamed"],
                weights=_weights(data["weights"]), totals=data["totals"],
                report=format_diff(result), params=_plain(b.shaped.spec.params))
    return page


def _change(c: dict) -> dict:
    """A changed node as the change list shows it: path, op and what changed, in words."""
    parts = []
    if "op_a" in c:
        parts.append(f"op {c['op_a']} → {c['op']}")
    if "repeat" in c:
        parts.append(f"repeat {c['repeat']['a']} → {c['repeat']['b']}")
    parts += [f"{k} {_short(v['a'])} → {_short(v['b'])}" for k, v in c.get("args", {}).items()]
    if "shapes" in c:
        parts.append(f"output {_short(c['shapes']['a'])} → {_short(c['shapes']['b'])}")
    for key, unit in (("params", "params"), ("macs", "MACs")):
        if c[key]["delta"]:
            parts.append(f"{unit} {c[key]['delta']:+,}")
    return {"path": c["path"], "path_a": c.get("path_a", c["path"]), "op": c["op"],
            "own": c["definition_changed"], "text": "; ".join(parts) or "inside changed"}


def _weights(w: dict) -> dict:
    """The weight-transfer table: one row per state_dict key that does not load as is."""
    rows = [{"key": k, "status": "changed shape", "a": v["a"], "b": v["b"]}
            for k, v in w["changed"].items()]
    rows += [{"key": k, "status": "new in B", "a": None, "b": s} for k, s in w["new"].items()]
    rows += [{"key": k, "status": "dropped from A", "a": s, "b": None} for k, s in w["dropped"].items()]
    rows += [{"key": f"{k} → {v}", "status": "renamed", "a": None, "b": None}
             for k, v in w["renamed"].items()]
    return {"unchanged": len(w["unchanged"]), "changed": len(w["changed"]), "new": len(w["new"]),
            "dropped": len(w["dropped"]), "renamed": len(w["renamed"]), "rows": rows}


def _short(value) -> str:
    return "-" if value is None else str(value)


def _plain(value):
    """A value as JSON can hold it: containers kept, anything else (a Deferred, a dtype) as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN or infinity
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)
