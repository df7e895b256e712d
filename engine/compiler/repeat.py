"""Repeats, for the resolve stage: `repeat: N` chains N copies of an op (numbered children,
`first:` / `last:` overrides, `names:`), and with `share: true` it is a recursion, one module
applied N times (DRCN, DRRN), whose applications are all outputs (`rec.3`, `rec.*`).

A mixin of the resolver (engine/compiler/resolve.py): it uses its `value`, `error`, `body_node`,
`args` and `link_share`-style plumbing through `self`.
"""

from __future__ import annotations

from engine.compiler.expr import is_expression
from engine.compiler.ir import INVALID, Graph, Loc, LocDict, Node, Ref
from engine.compiler.names import name_problem

DEFAULT_INPUT = "input"


class Repeats:
    def expand_steps(self, refs: list[Ref], earlier: list[Node], raw: LocDict,
                     path: str) -> list[Ref]:
        """`in: rec.*`: every application of an earlier recursion (`repeat:` with `share: true`)."""
        out = []
        for ref in refs:
            if ref.output != "*":
                out.append(ref)
                continue
            target = next((n for n in earlier if n.name == ref.node), None)
            if target is None or not target.repeat or target.body is None \
                    or len(target.body.outputs) < 2:
                self.error(f"`{ref}` needs '{ref.node}' to be an earlier recursion",
                           raw.value_loc("in"), path,
                           "`name.*` lists the applications of a `repeat:` node with `share: true`")
                continue
            out += [Ref(ref.node, k) for k in target.body.outputs if k != "out"]
        return out

    def repeat(self, name: str, raw: LocDict, scope: dict, path: str, inputs: list[Ref]) -> Node:
        """`repeat: N` chains N copies of the op; with `share: true` it is a recursion: one module
        applied N times, every application an output (`out` is the last, `0` ... `N-1` each);
        with `map: true` as well, application k takes input k instead of the previous output."""
        count = self.count(raw, scope, path)
        if not self.check_copies(count, raw.value_loc("repeat"), path):
            count = 0
        recursive, mapped = self.recursion_flags(raw, path, len(inputs), count)
        children, prev = [], DEFAULT_INPUT
        n_mapped = count if mapped else 0
        mapped_inputs = [f"each_{k}" for k in range(n_mapped)]
        extra_inputs = [f"{DEFAULT_INPUT}_{k}" for k in range(1, len(inputs) - max(n_mapped - 1, 0))]
        outer, self.copies = self.copies, self.copies * max(count, 1)
        try:
            for i in range(count):
                child_scope = {**scope, "i": i}
                child_name = self.child_name(raw, child_scope, path, i)
                child_in = [Ref(mapped_inputs[i] if mapped else prev)] + \
                    [Ref(n) for n in extra_inputs]
                if recursive and children:
                    child = self.application(child_name, children[0], child_in, raw.loc, path)
                else:
                    child = self.repeat_child(raw, child_name, child_scope, path, child_in, i,
                                              count)
                children.append(child)
                prev = child.name
        finally:
            self.copies = outer
        body_inputs = {**{n: None for n in mapped_inputs or [DEFAULT_INPUT]},
                       **{n: None for n in extra_inputs}}
        outputs = {"out": Ref(prev)}
        if recursive:
            outputs.update({c.name: Ref(c.name) for c in children})
        op = self.repeat_label(raw, children)
        body = Graph(op if "op" in raw else name, body_inputs, children, outputs, raw.loc)
        return Node(name, op, "graph", inputs, {}, raw.loc, path, body=body, repeat=count)

    @staticmethod
    def repeat_label(raw: LocDict, children: list[Node]) -> str:
        """What the repeat applies, as diagrams and summaries name it: its children's ops
        (`down_unit/unit` where `first:` or an `op:` expression varies them), not the text of
        an expression."""
        ops = list(dict.fromkeys(c.op for c in children if c.kind != "pass" and c.op != "?"))
        if ops and (len(ops) > 1 or is_expression(raw.get("op"))):
            return "/".join(ops)
        return str(raw.get("op", "seq"))

    def count(self, raw: LocDict, scope: dict, path: str) -> int:
        count = self.value(raw["repeat"], scope, raw.value_loc("repeat"), path)
        if count is INVALID:
            return 0
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            self.error(f"`repeat:` must be a count >= 0, got {count!r}", raw.value_loc("repeat"),
                       path, "write repeat: 3 or repeat: ${depths[0]}")
            return 0
        return count

    def recursion_flags(self, raw: LocDict, path: str, n_inputs: int, count: int) -> tuple[bool, bool]:
        """(share: true, map: true) of a repeat, checked."""
        share, mapped = raw.get("share", False), raw.get("map", False)
        if not isinstance(share, bool):
            self.error(f"on a repeat, `share:` is true or false, got {share!r}",
                       raw.value_loc("share"), path, "write share: true to apply one module N times")
            share = False
        if share and ("first" in raw or "last" in raw):
            self.error("a recursion (`share: true`) applies one module: it takes no first:/last:",
                       raw.value_loc("share"), path, "remove first:/last:, or share: true")
        if mapped is not False and (mapped is not True or not share):
            self.error("`map: true` needs `share: true` on the same repeat", raw.value_loc("map"),
                       path, "write share: true, map: true")
            mapped = False
        if mapped and n_inputs < count:
            self.error(f"`map: true` gives application k input k: {count} inputs needed, "
                       f"got {n_inputs}", raw.value_loc("map"), path, "write in: rec.*")
            mapped = False
        return share, mapped

    def repeat_child(self, raw: LocDict, child_name: str, child_scope: dict, path: str,
                     child_in: list[Ref], i: int, count: int) -> Node:
        extra = {**self.overrides(raw, "first", i == 0, child_scope, path),
                 **self.overrides(raw, "last", i == count - 1, child_scope, path)}
        sub = LocDict({k: v for k, v in raw.items() if k not in ("repeat", "names", "first", "last",
                                                                "in", "when", "share", "map")},
                      loc=raw.loc)
        sub.key_locs, sub.value_locs = raw.key_locs, raw.value_locs
        if "op" in extra:  # `first: {op: down_unit}`: this child is another block
            sub["op"] = extra.pop("op")
        return self.body_node(child_name, sub, child_scope, f"{path}.{child_name}", child_in, extra)

    def application(self, name: str, first: Node, inputs: list[Ref], loc: Loc | None,
                    path: str) -> Node:
        """Application k > 0 of a recursion: the first application's module, called again."""
        self.made_node(loc, path)
        node = Node(name, "?", "prim", inputs, loc=loc, path=f"{path}.{name}", share=first.name)
        self.link_share(node, [first])
        return node

    def child_name(self, raw: LocDict, scope: dict, path: str, i: int) -> str:
        if "names" not in raw:
            return str(i)
        value = self.value(raw["names"], scope, raw.value_loc("names"), path)
        problem = None if value is INVALID else name_problem(str(value), "repeat child name")
        if value is INVALID or problem:
            if problem:
                self.error(problem[0], raw.value_loc("names"), path,
                           f'{problem[1]}; write names: "layer_${{i}}"')
            return str(i)
        return str(value)

    def overrides(self, raw: LocDict, key: str, active: bool, scope: dict, path: str) -> dict:
        if not active or key not in raw:
            return {}
        if not isinstance(raw[key], dict):
            self.error(f"`{key}:` must be a mapping of arguments", raw.value_loc(key), path,
                       f"write {key}: {{stride: 2}}")
            return {}
        return dict(raw[key])
