"""The diff as text (for people) and as JSON (for tools)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

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
    WeightTransfer,
    run_label,
    same_run,
)
from engine.views.summary import human

_MAX_LINES = 80  # changed nodes listed in the text before "... N more"
_MAX_KEYS = 20  # state_dict keys listed per category in the text


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
        if last is not None and same_run(name, last.names[-1]) \
                and last.fingerprint() == item.fingerprint():
            last.names.append(name)
        else:
            out.append(item)
    return out


def _render(items: list[_Item], parent: str, level: int, out: list[str]) -> None:
    for item in items:
        name = run_label(item.names) if len(item.names) > 1 else item.names[0]
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
