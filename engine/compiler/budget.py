"""The resolver's budget: how much a spec may make, checked while it is resolved.

A mixin of the resolver (engine/compiler/resolve.py), as repeat.py is: repeat and `each:` counts
and their products, a total node budget (10 x the repeat limit, engine/compiler/limits.py) with an
estimate read off the YAML before a block is made, and recursion that would never end. A spec
that asks for more stops resolving with one located error instead of running for minutes.
"""

from __future__ import annotations

from typing import Any

from engine.compiler.ir import Diagnostic, Loc
from engine.compiler.limits import limit

MAX_BLOCK_DEPTH = 64  # blocks inside blocks: the deepest bundled spec (a U-Net's levels) uses 5


class TooMuchWork(Exception):
    """Resolution stops: the spec asks for more nodes than any model needs (its error attached)."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


class Budget:
    """Counts what the resolver makes; `block_stack` (the blocks being made) is the resolver's."""

    block_stack: list[tuple[str, str]]
    blocks: dict[str, Any]
    errors: list[Diagnostic]

    def start_budget(self) -> None:
        self.copies = 1  # the product of the enclosing repeat and `each:` counts
        self.created = 0  # nodes made so far: bounded, whatever nesting made them
        self.max_nodes = 10 * limit("repeat").value()
        self.sizes: dict[str, int] = {}  # block -> about how many nodes one instance makes

    def made_node(self, loc: Loc | None, path: str) -> None:
        """Count a node made; stop resolving once there are far more than any model has."""
        self.created += 1
        if self.created > self.max_nodes:
            raise TooMuchWork(self.too_many(loc, path,
                                            f"the spec makes more than {self.max_nodes:,} nodes"))

    def too_many(self, loc: Loc | None, path: str, what: str) -> Diagnostic:
        top = limit("repeat")
        return Diagnostic(f"{what} (through repeats, `each:` and blocks inside "
                          f"blocks), over the limit of {self.max_nodes:,} (10 x the repeat limit)",
                          loc, path, f"a file should not ask for this much; if it is yours and "
                                     f"meant, raise the limit: {top.env}={top.value() * 10}")

    def block_size(self, op: str, stack: tuple = ()) -> int:
        """About how many nodes one instance of a block makes, read off the YAML before making
        any (blocks inside blocks multiply: ten levels of four make a million); literal repeat
        and `each:` counts multiply too, counts computed by expressions are counted once."""
        if op not in self.sizes:
            block = self.blocks.get(op)
            nodes = block.get("nodes") if isinstance(block, dict) else None
            self.sizes[op] = 1 if op in stack else 1 + self.yaml_size(nodes, (*stack, op))
        return self.sizes[op]

    def yaml_size(self, value: Any, stack: tuple) -> int:
        if isinstance(value, list):
            total = sum(self.yaml_size(v, stack) for v in value)
        elif isinstance(value, dict):
            op = value.get("op")
            total = 1 + sum(self.yaml_size(v, stack) for v in value.values())
            if isinstance(op, str) and op in self.blocks:
                total += self.block_size(op, stack)
            for key in ("repeat", "each"):
                count = value.get(key)
                if isinstance(count, int) and not isinstance(count, bool) and count > 1:
                    total *= count
        else:
            return 0
        return min(total, 10 * self.max_nodes)  # enough to know it is too many

    def endless(self, op: str, inner: dict) -> str:
        """Why instantiating `op` with these bound params would never end, or "": the same block
        with the same arguments already being instantiated (recursion that makes no progress),
        or blocks nested deeper than any model (a recursion whose `when:` never turns false)."""
        ops = [o for o, _ in self.block_stack]
        if (op, repr(sorted(inner.items(), key=str))) in self.block_stack:
            cycle = [*ops[ops.index(op):], op]
            return f"block '{op}' uses itself with the same arguments: {' -> '.join(cycle)}"
        if len(self.block_stack) >= MAX_BLOCK_DEPTH:
            return (f"blocks nest more than {MAX_BLOCK_DEPTH} deep "
                    f"({' -> '.join(ops[:3])} -> ... -> {op})")
        return ""

    def check_copies(self, count: int, loc: Loc | None, path: str) -> bool:
        """A repeat or `each:` count, alone and times the enclosing ones, within the limit."""
        diag = limit("repeat").check(count, loc, path)
        if diag is None and self.copies * count > limit("repeat").value():
            diag = limit("repeat").check(self.copies * count, loc, path)
            diag.message = (f"nested repeats make {self.copies * count:,} copies "
                            f"({self.copies:,} x {count:,}), over the limit of "
                            f"{limit('repeat').value():,}")
        if diag is not None:
            self.errors.append(diag)
            return False
        return True
