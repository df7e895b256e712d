"""Instances with the same class body share one generated class; the literals that differ
between them become its constructor's parameters, named after the block's params where they
match (`width`, `width * 4`); classes are named after their op, numbered where taken."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.compiler.ir import Spec
from engine.views.codegen.ir import REQUIRED, Body, Group, Inst, Param
from engine.views.codegen.literals import GLOBALS, is_attr, literal, same, value_key
from engine.views.codegen.tree import literal_defaults


@dataclass
class ClassTable:
    """The generated classes of one file, in order of creation (`Group.gid`)."""

    groups: list[Group] = field(default_factory=list)
    by_key: dict[tuple, Group] = field(default_factory=dict)

    def add(self, inst: Inst, body: Body) -> Group:
        """The class of `inst`: the one with an equal body, else a new one."""
        base = ("network", inst.network) if inst.node is None else inst.base
        key = (base, body.lines, body.inits, body.forward,
               repr(body.holes))  # repr: a list default is unhashable
        group = self.by_key.get(key)
        if group is None:
            group = Group(len(self.groups), inst.base, body.lines, body.inits, body.forward,
                          body.holes)
            self.groups.append(group)
            self.by_key[key] = group
        group.insts.append(inst)
        inst.group, inst.values = group, body.values
        return group


def finalize(group: Group, spec: Spec) -> None:
    """Fill `group.text` (each hole's text), `omitted` and `params`, once all its instances
    are known: literals equal in every instance are written in, the others are parameters."""
    clusters = _write_constants(group)
    block = _block_values(group.insts)
    decls = literal_defaults(spec, group.insts[0].node.op) if block else {}
    params: dict[str, Param] = {}
    _params_from_block(group, clusters, block, decls, params)
    _params_for_the_rest(group, clusters, block, decls, params)
    group.params = sorted(params.values(), key=lambda p: p.first_use)


def _write_constants(group: Group) -> dict[tuple, list[int]]:
    """Write in the literals equal in every instance; return the others, clustered by their
    values in the instances (holes varying together become one parameter)."""
    clusters: dict[tuple, list[int]] = {}
    for i, hole in enumerate(group.holes):
        vec = tuple(value_key(inst.values[i]) for inst in group.insts)
        if len(set(vec)) == 1:
            value = group.insts[0].values[i]
            group.text[i] = literal(value)
            if hole.default is not REQUIRED and same(value, hole.default):
                group.omitted.add(i)
        else:
            clusters.setdefault(vec, []).append(i)
    return clusters


def _block_values(insts: list[Inst]) -> dict[str, list]:
    """The spec block's params that every instance has a value for, and those values."""
    if not all(inst.block_args is not None for inst in insts):
        return {}
    return {name: [inst.block_args[name] for inst in insts] for name in insts[0].block_args
            if all(name in inst.block_args for inst in insts) and is_attr(name)
            and name not in GLOBALS}


def _params_from_block(group: Group, clusters: dict[tuple, list[int]], block: dict[str, list],
                       decls: dict[str, Any], params: dict[str, Param]) -> None:
    """A literal equal to a block param in every instance is named after it."""
    for holes in clusters.values():
        values = [inst.values[holes[0]] for inst in group.insts]
        match = next((p for p, pv in block.items()
                      if p not in params and all(same(a, v) for a, v in zip(pv, values))), None)
        if match is not None:
            default = decls.get(match, group.holes[holes[0]].default)
            params[match] = Param(match, holes[0], holes, default, match)
            for i in holes:
                group.text[i] = match


def _params_for_the_rest(group: Group, clusters: dict[tuple, list[int]], block: dict[str, list],
                         decls: dict[str, Any], params: dict[str, Param]) -> None:
    """`width * 4` for a multiple of a block param; otherwise a parameter named after the
    argument (prefixed with its module where the name is taken)."""
    taken = set(GLOBALS) | set(group.insts[0].block_args or {})  # fresh names avoid both
    for holes in clusters.values():
        if holes[0] in group.text:
            continue
        multiple = _multiple([inst.values[holes[0]] for inst in group.insts], block)
        if multiple:
            name, k = multiple
            param = params.setdefault(name, Param(name, holes[0], [], decls.get(name, REQUIRED),
                                                  name))
            param.first_use = min(param.first_use, holes[0])
            text = f"{name} * {k}"
        else:
            first = group.holes[holes[0]]
            text = _fresh(first.name, first.owner, taken)
            taken.add(text)
            params[text] = Param(text, holes[0], holes, first.default)
        for i in holes:
            group.text[i] = text


def _multiple(values: list, block: dict[str, list]) -> tuple[str, int] | None:
    """`values` == k * a block param, for one integer k >= 2 (written `width * 4`)."""
    if not all(type(v) is int for v in values):
        return None
    for name, pv in block.items():
        if all(type(p) is int and p > 0 and v % p == 0 for p, v in zip(pv, values)):
            ks = {v // p for p, v in zip(pv, values)}
            if len(ks) == 1 and (k := ks.pop()) >= 2:
                return name, k
    return None


def _fresh(name: str, owner: str, taken: set[str]) -> str:
    """A parameter name from the argument's own name, prefixed by its module if taken."""
    name = name if is_attr(name) else "arg"
    if name not in taken:
        return name
    owner = owner.replace("-", "_")  # a node named `block2-0` prefixes as block2_0
    prefixed = f"{owner}_{name}" if is_attr(f"{owner}_{name}") else f"arg_{name}"
    candidate, n = prefixed, 2
    while candidate in taken:
        candidate, n = f"{prefixed}{n}", n + 1
    return candidate


def name_classes(groups: list[Group], tops: list[Inst], taken: set[str]) -> None:
    """Networks after the spec; the rest after their op, numbered: Bottleneck, Bottleneck2.
    `taken`: module-level names already in the file (copied classes, helpers)."""
    used = set(taken) | GLOBALS
    ordered = sorted(groups, key=lambda g: min(i.order for i in g.insts))
    for g in [*(t.group for t in tops), *(g for g in ordered if g.insts[0].node is not None)]:
        name, n = g.base, 2
        while name in used:
            name, n = f"{g.base}{n}", n + 1
        used.add(name)
        g.name = name
