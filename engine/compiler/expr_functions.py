"""Helpers defined in a spec (`functions:`), callable from every expression of the spec.

```yaml
functions:
  make_divisible:                          # torchvision's _make_divisible
    args: [v, divisor, {min_value: null}]  # a name is required; {name: default} is optional
    let:                                   # local values, in order; each sees the ones above
      min_value: "${divisor if min_value is None else min_value}"
      new_v: "${max(min_value, int(v + divisor / 2) // divisor * divisor)}"
    expr: "${new_v + divisor if new_v < 0.9 * v else new_v}"
```

A helper sees its arguments, its `let:` values and the other helpers, nothing else (no params,
no `input`): what it computes depends on what it is given. Calls take arguments by position or
by name (`make_divisible(w, 8, min_value=16)`). `define_functions` checks the definitions and
parses their expressions once; the resolver puts the table it returns into every scope (under
`FUNCTIONS_KEY`, which no expression can name), and the evaluator (engine/compiler/expr.py) calls
`Helper.call`. A call costs its size in steps of the expression's `expr_steps` budget, helpers calling
helpers are bounded by `expr_depth`, and an error inside a helper names the helper and the line
of the expression that failed (the error itself is reported where the call is written).
"""

from __future__ import annotations

import ast
import keyword
import reprlib
from dataclasses import dataclass, field
from typing import Any

from engine.blocks.registry import suggest
from engine.compiler.expr import (
    _FUNCTIONS,
    FUNCTIONS_KEY,
    ExprError,
    Poisoned,
    _check_limit,
    is_expression,
    parse,
    source_of,
    weight,
)
from engine.compiler.ir import Diagnostic, Loc, LocDict, LocList
from engine.compiler.limits import limit

KEYS = {"args", "let", "expr", "description"}
_HINT = 'write name: {args: [x, {scale: 2}], expr: "${x * scale}"}'


class Functions(dict):
    """name -> Helper; short to print, as it sits in every scope (and the resolver prints those)."""

    def __repr__(self) -> str:
        return f"<functions {', '.join(self)}>"


@dataclass
class Helper:
    name: str
    loc: Loc  # where `expr:` is written
    params: list[str] = field(default_factory=list)
    defaults: dict[str, tuple[Any, ast.expr | None, Loc]] = field(default_factory=dict)
    lets: list[tuple[str, ast.expr, Loc]] = field(default_factory=list)
    body: ast.expr | None = None  # None: the definition is broken (and reported)
    weight: int = 0  # the parts of its expressions: the steps of one call
    table: Functions = field(default_factory=Functions)

    def signature(self) -> str:
        parts = [p if p not in self.defaults else f"{p}={reprlib.repr(self.defaults[p][0])}"
                 for p in self.params]
        return f"{self.name}({', '.join(parts)})"

    def bind(self, args: list, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by name; errors are about the call, not the helper."""
        if len(args) > len(self.params):
            raise ExprError(f"{self.signature()} takes {len(self.params)} argument(s), "
                            f"got {len(args)}", f"call it as {self.signature()}")
        bound = dict(zip(self.params, args))
        for name, value in kwargs.items():
            if name not in self.params:
                raise ExprError(f"{self.signature()} has no argument '{name}'",
                                suggest(name, self.params) or f"call it as {self.signature()}")
            if name in bound:
                raise ExprError(f"argument '{name}' of {self.signature()} is given twice")
            bound[name] = value
        missing = [p for p in self.params if p not in bound and p not in self.defaults]
        if missing:
            raise ExprError(f"missing argument '{missing[0]}' in a call to {self.signature()}",
                            f"call it as {self.signature()}")
        return bound

    def call(self, ev: Any, args: list, kwargs: dict[str, Any]) -> Any:
        """Evaluate the helper for these arguments with evaluator `ev` (its budget, its depth)."""
        if self.body is None:
            raise Poisoned(self.name)  # its definition's error is already reported
        bound = self.bind(args, kwargs)
        scope: dict[str, Any] = {FUNCTIONS_KEY: self.table}
        outer, where = ev.scope, self.loc
        ev.calls.append(self.name)
        ev.loops += 1
        try:
            if len(ev.calls) > limit("expr_depth").value():
                _check_limit("expr_depth", len(ev.calls), f"functions call each other without "
                             f"end ({_chain(ev.calls)}): stop the recursion with a condition, "
                             f"e.g. 1 if n <= 1 else n * f(n - 1)")
            ev.step(1 + self.weight)  # its work, counted up front
            ev.scope = scope
            for name in self.params:
                if name in bound:
                    scope[name] = bound[name]
                else:
                    value, tree, where = self.defaults[name]
                    scope[name] = value if tree is None else ev.visit(tree)
            for name, tree, at in self.lets:
                where = at
                scope[name] = ev.visit(tree)
            where = self.loc
            return ev.visit(self.body)
        except ExprError as err:
            if getattr(err, "function", None):  # the innermost helper has said where
                raise
            via = f"; via {_chain(ev.calls)}" if len(ev.calls) > 1 else ""
            located = ExprError(f"in function '{self.name}' ({where}{via}): {err}", err.hint)
            located.function = self.name
            raise located from None
        finally:
            ev.scope = outer
            ev.calls.pop()
            ev.loops -= 1


def define_functions(raw: Any, loc: Loc) -> tuple[dict[str, Functions], list[Diagnostic]]:
    """The scope entry that makes a spec's `functions:` callable ({} when there are none), and
    the errors in their definitions. `loc` is where `functions:` is written."""
    if raw is None:
        return {}, []
    problems: list[Diagnostic] = []
    if not isinstance(raw, dict):
        return {}, [Diagnostic("`functions:` must map names to {args, let, expr}", loc,
                               "functions", _HINT)]
    table = Functions()
    for name, defn in raw.items():
        at = raw.key_loc(name) if isinstance(raw, LocDict) else loc
        helper = Helper(str(name), at, table=table)
        if _problem(name, "function name") or str(name) in _FUNCTIONS:
            problems.append(Diagnostic(_problem(name, "function name") or
                                       f"'{name}' is a built-in function", at, f"functions.{name}",
                                       "choose another name (a Python identifier)"))
        elif not isinstance(defn, LocDict):
            problems.append(Diagnostic(f"function '{name}' must be a mapping with `expr:`", at,
                                       f"functions.{name}", _HINT))
        else:
            _define(helper, defn, problems)
        table[str(name)] = helper
    return {FUNCTIONS_KEY: table}, problems


def _define(helper: Helper, defn: LocDict, problems: list[Diagnostic]) -> None:
    path, count = f"functions.{helper.name}", len(problems)

    def error(message: str, where: Loc, hint: str = _HINT) -> None:
        problems.append(Diagnostic(message, where, path, hint))

    for key in defn:
        if key not in KEYS:
            error(f"unknown key '{key}' in function '{helper.name}'", defn.key_loc(key),
                  suggest(str(key), sorted(KEYS)) or f"a function takes {', '.join(sorted(KEYS))}")
    args = defn.get("args") or []
    for k, item in enumerate(args if isinstance(args, list) else [args]):
        at = args.item_loc(k) if isinstance(args, LocList) else defn.value_loc("args")
        name, default = next(iter(item.items())) if isinstance(item, dict) and len(item) == 1 \
            else (item, None)
        problem = _problem(name, "argument name")
        if not isinstance(item, (str, dict)) or (isinstance(item, dict) and len(item) != 1):
            problem = f"an argument is a name or {{name: default}}, got {item!r}"
        elif not problem and name in helper.params:
            problem = f"argument '{name}' is listed twice"
        if problem:
            error(problem, at, "write args: [v, divisor, {min_value: null}]")
            continue
        helper.params.append(name)
        if isinstance(item, dict):
            where = item.value_loc(name) if isinstance(item, LocDict) else at
            helper.defaults[name] = (default, _parse(default, where, error, literal_ok=True), where)
    lets = defn.get("let", LocDict())
    if not isinstance(lets, LocDict):
        error("`let:` must map names to expressions", defn.value_loc("let"),
              'write let: {half: "${x / 2}"}')
        lets = LocDict()
    for name, value in lets.items():
        problem = _problem(name, "name in let:")
        if problem:
            error(problem, lets.key_loc(name))
            continue
        tree = _parse(value, lets.value_loc(name), error)
        if tree is not None:
            helper.lets.append((name, tree, lets.value_loc(name)))
    if "expr" not in defn:
        error(f"function '{helper.name}' has no `expr:`", helper.loc)  # at its name
    helper.loc = defn.value_loc("expr") if "expr" in defn else defn.loc
    body = _parse(defn.get("expr"), helper.loc, error)
    helper.body = body if len(problems) == count else None
    trees = [body, *(t for _, t, _ in helper.lets), *(t for _, t, _ in helper.defaults.values())]
    helper.weight = sum(weight(t) for t in trees if t is not None)


def _parse(value: Any, where: Loc, error: Any, literal_ok: bool = False) -> ast.expr | None:
    """The tree of a `${...}` value; None (and an error, unless `literal_ok`) for anything else."""
    if is_expression(value) and source_of(value) != value:
        try:
            return parse(source_of(value))
        except ExprError as err:
            error(str(err), where, err.hint)
    elif not literal_ok and value is not None:
        error(f"expected one ${{...}} expression, got {value!r}", where,
              'write expr: "${x * 2}" (text with ${...} inside is not an expression)')
    return None


def _chain(calls: list[str]) -> str:
    return " -> ".join(calls if len(calls) <= 5 else [*calls[:3], "...", calls[-1]])


def _problem(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        return f"{what} {name!r} is not a Python identifier"
    return ""
