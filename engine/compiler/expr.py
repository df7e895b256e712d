"""`${...}` expressions: a small evaluator over a whitelisted subset of Python syntax.

Allowed: literals, names from the scope (params, the repeat index `i`, loop variables),
arithmetic, comparisons, `and`/`or`/`not`, `a if c else b`, indexing and slicing, list and
tuple displays, `input.channels` / `input.shape` / `input.rank` on upstream shapes, and the
pure built-ins min, max, sum, len, abs, int, float, round. Python's `eval` is never used:
the text is parsed with `ast` and walked here, so nothing else can run.
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Any

from engine.blocks.registry import suggest
from engine.compiler.ir import INVALID, TensorInfo

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_FUNCTIONS = {"min": min, "max": max, "sum": sum, "len": len, "abs": abs, "int": int,
              "float": float, "round": round}
_SHAPE_ATTRS = {"channels", "shape", "rank"}
_WHOLE = re.compile(r"^\$\{(.*)\}$", re.S)
_PARTS = re.compile(r"\$\{(.*?)\}")
_SHORT = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")


class ExprError(Exception):
    """A bad expression; `hint` says what to write instead."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


class Poisoned(Exception):
    """The expression reads a value that already failed (its error is reported elsewhere)."""


class NeedsShape(Exception):
    """The expression reads `input`, which is only known during shape inference."""


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and ("${" in value or bool(_SHORT.match(value)))


def source_of(value: str) -> str:
    """The Python-syntax text inside `${...}` or `$name`."""
    short = _SHORT.match(value)
    if short:
        return short.group(1)
    whole = _WHOLE.match(value)
    return whole.group(1) if whole and "${" not in whole.group(1) else value


def evaluate_value(value: str, scope: dict[str, Any]) -> Any:
    """`$x` and `${...}` give typed values; text with embedded `${...}` gives a string."""
    short, whole = _SHORT.match(value), _WHOLE.match(value)
    if short:
        return evaluate(short.group(1), scope)
    if whole and "${" not in whole.group(1):
        return evaluate(whole.group(1), scope)
    return _PARTS.sub(lambda m: str(evaluate(m.group(1), scope)), value)


def evaluate(source: str, scope: dict[str, Any]) -> Any:
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as err:
        raise ExprError(f"cannot parse expression '{source}': {err.msg}",
                        "write Python-style arithmetic, e.g. ${width * 4}") from None
    return _Evaluator(scope).visit(tree.body)


class _Evaluator(ast.NodeVisitor):
    def __init__(self, scope: dict[str, Any]):
        self.scope = scope

    def generic_visit(self, node: ast.AST) -> Any:
        raise ExprError(f"'{ast.unparse(node)}' is not allowed in an expression",
                        "use arithmetic, comparisons, indexing and `a if c else b` only")

    def visit_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in self.scope:
            value = self.scope[node.id]
            if value is NeedsShape:
                raise NeedsShape(node.id)
            if value is INVALID:
                raise Poisoned(node.id)
            return value
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        names = [k for k in self.scope if not k.startswith("_")]
        raise ExprError(f"unknown name '{node.id}' in expression", suggest(node.id, names, n=1) or
                        f"known names: {', '.join(sorted(names)) or 'none'}")

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        fn = _BINARY.get(type(node.op))
        if fn is None:
            return self.generic_visit(node)
        left, right = self.visit(node.left), self.visit(node.right)
        if fn is operator.pow and isinstance(right, (int, float)) and abs(right) > 64:
            raise ExprError(f"exponent {right} is too large", "keep exponents below 64")
        try:
            return fn(left, right)
        except ZeroDivisionError as err:
            raise ExprError(f"cannot compute '{ast.unparse(node)}': {err}",
                            "the divisor is zero here; check the params it is computed from") from None
        except (TypeError, ValueError) as err:
            raise ExprError(f"cannot compute '{ast.unparse(node)}': {err}") from None

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        fn = _UNARY.get(type(node.op))
        if fn is None:
            return self.generic_visit(node)
        return fn(self.visit(node.operand))

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        is_and = isinstance(node.op, ast.And)
        value = None
        for item in node.values:
            value = self.visit(item)
            if bool(value) != is_and:
                return value
        return value

    def visit_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            right = self.visit(right_node)
            try:
                if not _COMPARE[type(op)](left, right):
                    return False
            except TypeError as err:
                raise ExprError(f"cannot compare in '{ast.unparse(node)}': {err}") from None
            left = right
        return True

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        value, index = self.visit(node.value), self.visit(node.slice)
        try:
            return value[index]
        except (IndexError, KeyError, TypeError) as err:
            raise ExprError(f"cannot index in '{ast.unparse(node)}': {err}") from None

    def visit_Slice(self, node: ast.Slice) -> slice:
        def part(n: ast.AST | None) -> Any:
            return None if n is None else self.visit(n)

        return slice(part(node.lower), part(node.upper), part(node.step))

    def visit_List(self, node: ast.List) -> list:
        return [self.visit(e) for e in node.elts]

    def visit_Tuple(self, node: ast.Tuple) -> tuple:
        return tuple(self.visit(e) for e in node.elts)

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        value = self.visit(node.value)
        if not isinstance(value, TensorInfo) or node.attr not in _SHAPE_ATTRS:
            raise ExprError(f"attribute access '{ast.unparse(node)}' is not allowed",
                            "only input.channels, input.shape and input.rank exist")
        return list(value.shape) if node.attr == "shape" else getattr(value, node.attr)

    def visit_Call(self, node: ast.Call) -> Any:
        name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        if name not in _FUNCTIONS or node.keywords:
            raise ExprError(f"call to '{name}' is not allowed",
                            f"only {', '.join(sorted(_FUNCTIONS))} can be called")
        try:
            return _FUNCTIONS[name](*[self.visit(a) for a in node.args])
        except (TypeError, ValueError) as err:
            raise ExprError(f"cannot compute '{ast.unparse(node)}': {err}") from None
