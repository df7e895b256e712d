"""`${...}` expressions: a small evaluator over a whitelisted subset of Python syntax.

Allowed: literals, names from the scope (params, the repeat index `i`, loop variables),
arithmetic, comparisons, `and`/`or`/`not`, `a if c else b`, indexing and slicing, list and
tuple displays, list comprehensions, `input.channels` / `input.shape` / `input.rank` on upstream
shapes, the pure built-ins of `_FUNCTIONS`, and the helpers of a spec's `functions:` (defined in
engine/compiler/expr_functions.py, found in the scope under FUNCTIONS_KEY). Python's `eval` is
never used: the text is parsed with `ast` and walked here, so nothing else can run.

Work is bounded before it is done: sizes by the limits int_digits and sequence_length, loops
and helper calls by expr_steps (iterations, calls, and the items of the lists made or read
inside them, counted for one whole expression) and expr_depth (helpers calling helpers).
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
import reprlib
from typing import Any

from engine.blocks.registry import suggest
from engine.compiler.ir import INVALID, TensorInfo
from engine.compiler.limits import limit

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b, ast.Is: lambda a, b: _is(a, b),
    ast.IsNot: lambda a, b: not _is(a, b),
}
_FUNCTIONS = {"min": min, "max": max, "sum": sum, "len": len, "abs": abs, "int": int,
              "float": float, "round": round, "log": math.log, "log2": math.log2,
              "log10": math.log10, "exp": math.exp, "sqrt": math.sqrt, "ceil": math.ceil,
              "floor": math.floor, "any": any, "all": all, "list": list,
              "range": lambda *a: list(range(*a)), "zip": lambda *a: list(zip(*a)),
              "enumerate": lambda seq, start=0: list(enumerate(seq, start))}
_DOMAIN = {"log": "log needs a number above 0, and a base above 0 other than 1",
           "log2": "log2 needs a number above 0", "log10": "log10 needs a number above 0",
           "sqrt": "sqrt needs a number of 0 or more", "range": "range's step must not be 0"}
FUNCTIONS_KEY = "_functions()"  # the scope entry holding a spec's helpers: no expression can name it
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


def parse(source: str) -> ast.expr:
    """The syntax tree of an expression's text, its size checked before it is parsed."""
    _check_limit("expr_chars", len(source), "write a shorter expression")
    digits = max((len(m) for m in _DIGITS.findall(source)), default=0)
    _check_limit("int_digits", digits, "write a smaller number")
    try:
        return _parsed(source.strip())
    except SyntaxError as err:
        raise ExprError(f"cannot parse expression '{_short(source)}': {err.msg}",
                        "write Python-style arithmetic, e.g. ${width * 4}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExprError(f"expression '{_short(source)}' is nested too deeply",
                        "write a flatter expression") from None


@functools.lru_cache(maxsize=8192)
def _parsed(source: str) -> ast.expr:
    """Parsed once per distinct text: a spec repeats the same few expressions at every node of
    every repeat (`$width`, `${out * 4}`), and the evaluator only reads the tree."""
    return ast.parse(source, mode="eval").body


def evaluate(source: str, scope: dict[str, Any]) -> Any:
    tree = parse(source)
    try:
        return _Evaluator(scope).visit(tree)
    except RecursionError:
        raise ExprError(f"expression '{_short(source)}' is nested too deeply",
                        "write a flatter expression") from None


_DIGITS = re.compile(r"\d+")
_LOG10_2 = 0.30103


def _short(source: str) -> str:
    return source if len(source) <= 80 else source[:77] + "..."


def _check_limit(name: str, count: int, hint: str) -> None:
    """Raise ExprError when `count` is over the limit `name` (engine/compiler/limits.py)."""
    diag = limit(name).check(count, None)
    if diag is not None:
        raise ExprError(diag.message, f"{hint}; {diag.hint}")


def _int_digits(value: int) -> int:
    return int(value.bit_length() * _LOG10_2) + 1


def _size(value: Any, memo: dict[int, tuple[Any, int]]) -> int:
    """How much text a value stands for: a string's length, an integer's digits, and for a list
    the sum over its items (a list repeating one big item is as big as its text)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _int_digits(value)
    if not isinstance(value, (list, tuple)):
        return 1
    known = memo.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    total = max(len(value), sum(_size(item, memo) for item in value))
    memo[id(value)] = (value, total)
    return total


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (str, list, tuple))


def weight(tree: ast.AST) -> int:
    """How many parts an expression has: the work of evaluating it once, in steps."""
    return sum(1 for _ in ast.walk(tree))


def _is(a: Any, b: Any) -> bool:
    if a is not None and b is not None:
        raise TypeError("`is` only compares with None here; use == for values")
    return a is b


def _range_length(*args: Any) -> int:
    numbers = range(*args)  # checks the arguments; a range is not built, only described
    try:
        return len(numbers)
    except OverflowError:  # longer than any list: the limit refuses it
        return abs(numbers.stop - numbers.start) // abs(numbers.step)


# the size of what these built-ins would make, known (and refused) before they make it
_LENGTHS = {"range": _range_length,
            "zip": lambda *a: min((len(s) for s in a), default=0) * max(len(a), 1),
            "enumerate": lambda seq, start=0: 2 * len(seq)}


class _Evaluator(ast.NodeVisitor):
    def __init__(self, scope: dict[str, Any]):
        self.scope = scope
        self.sizes: dict[int, tuple[Any, int]] = {}
        self.max_digits = limit("int_digits").value()
        self.steps, self.max_steps = 0, limit("expr_steps").value()
        self.loops = 0  # comprehensions and helper bodies being evaluated
        self.calls: list[str] = []  # helpers being evaluated, outermost first

    def checked(self, value: Any) -> Any:
        """A value this expression made, refused when it is too big an integer or sequence."""
        if isinstance(value, int) and not isinstance(value, bool):
            if value.bit_length() * _LOG10_2 > self.max_digits:
                _check_limit("int_digits", _int_digits(value), "compute a smaller number")
        elif _is_sequence(value):
            self.charge(value)
            _check_limit("sequence_length", _size(value, self.sizes),
                         "make a shorter string or list")
        return value

    def step(self, count: int) -> None:
        """Count work (loop iterations, helper calls, list items); refuse past expr_steps."""
        self.steps += count
        if self.steps > self.max_steps:
            _check_limit("expr_steps", self.steps, "loop over fewer items")

    def charge(self, value: Any) -> None:
        """Inside a loop or helper, a list made or read costs a step per item."""
        if self.loops and _is_sequence(value):
            self.step(len(value))

    def check_operands(self, fn: Any, left: Any, right: Any) -> None:
        """Refuse, before computing it, a result too big to hold: `'a' * 10**9`, `x ** 60`."""
        seq, num = (left, right) if _is_sequence(left) else (right, left)
        if fn is operator.mul and _is_sequence(seq) and isinstance(num, int):
            _check_limit("sequence_length", _size(seq, self.sizes) * max(num, 0),
                         "make a shorter string or list")
        elif fn is operator.add and _is_sequence(left) and _is_sequence(right):
            _check_limit("sequence_length", _size(left, self.sizes) + _size(right, self.sizes),
                         "make a shorter string or list")
        elif fn is operator.mod and isinstance(left, str):
            raise ExprError("string formatting with `%` is not allowed in an expression",
                            "embed values in text with ${...} instead")
        elif fn is operator.pow and isinstance(left, int) and isinstance(right, int) and right > 0:
            digits = int(left.bit_length() * right * _LOG10_2)
            if digits > limit("int_digits").value():
                _check_limit("int_digits", digits, "compute a smaller number")

    def generic_visit(self, node: ast.AST) -> Any:
        raise ExprError(f"'{ast.unparse(node)}' is not allowed in an expression",
                        "use arithmetic, comparisons, indexing, `a if c else b`, "
                        "[... for ... in ...] and calls of functions only")

    def visit_Constant(self, node: ast.Constant) -> Any:
        if not isinstance(node.value, (int, float, str, type(None))):
            return self.generic_visit(node)  # complex numbers, bytes, `...`
        return self.checked(node.value)

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
        self.check_operands(fn, left, right)
        try:
            result = fn(left, right)
        except ZeroDivisionError as err:
            raise ExprError(f"cannot compute '{_short(ast.unparse(node))}': {err}",
                            "the divisor is zero here; check the params it is computed from") from None
        except OverflowError:
            raise _overflow(node) from None
        except (TypeError, ValueError) as err:
            raise ExprError(f"cannot compute '{_short(ast.unparse(node))}': {err}") from None
        if isinstance(result, float) and not math.isfinite(result) and all(
                not isinstance(v, float) or math.isfinite(v) for v in (left, right)):
            raise _overflow(node)
        return self.checked(result)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        fn = _UNARY.get(type(node.op))
        if fn is None:
            return self.generic_visit(node)
        try:
            return fn(self.visit(node.operand))
        except TypeError as err:
            raise ExprError(f"cannot compute '{_short(ast.unparse(node))}': {err}") from None

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
        self.charge(left)
        for op, right_node in zip(node.ops, node.comparators):
            right = self.visit(right_node)
            self.charge(right)
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
            item = value[index]
            if isinstance(index, slice):
                self.charge(item)  # a copy
            return item
        except (IndexError, KeyError, TypeError, ValueError) as err:
            raise ExprError(f"cannot index in '{_short(ast.unparse(node))}': {err}") from None

    def visit_Slice(self, node: ast.Slice) -> slice:
        def part(n: ast.AST | None) -> Any:
            return None if n is None else self.visit(n)

        return slice(part(node.lower), part(node.upper), part(node.step))

    def visit_List(self, node: ast.List) -> list:
        return self.checked([self.visit(e) for e in node.elts])

    def visit_Tuple(self, node: ast.Tuple) -> tuple:
        return self.checked(tuple(self.visit(e) for e in node.elts))

    def visit_ListComp(self, node: ast.ListComp | ast.GeneratorExp) -> list:
        """`[f(x) for x in xs if c]`, generators nested left to right as in Python; the loop
        variables live in a scope of their own, dropped afterwards."""
        out: list = []
        local = dict(self.scope)  # the loop variables' scope
        outer, self.scope = self.scope, local
        self.loops += 1
        try:
            self.generate(node.elt, node.generators, 0, local, out)
        finally:
            self.scope = outer
            self.loops -= 1
        return self.checked(out)

    visit_GeneratorExp = visit_ListComp  # sum(x for x in xs): made as a list

    def generate(self, elt: ast.expr, generators: list[ast.comprehension], k: int,
                 local: dict[str, Any], out: list) -> None:
        if k == len(generators):
            out.append(self.visit(elt))
            return
        gen = generators[k]
        if gen.is_async:
            self.generic_visit(gen)
        items = self.visit(gen.iter)
        if not _is_sequence(items):
            raise ExprError(f"cannot loop over {type(items).__name__} in "
                            f"'{_short(ast.unparse(gen).strip())}'", "loop over a list, or range(n)")
        # every iteration will run: its work (the parts it evaluates) is counted, and refused, up front
        body = elt if k + 1 == len(generators) else generators[k + 1].iter
        self.step(len(items) * (1 + sum(weight(e) for e in (body, *gen.ifs))))
        for item in items:
            self.bind(gen.target, item, local)
            if all(self.visit(cond) for cond in gen.ifs):
                self.generate(elt, generators, k + 1, local, out)

    def bind(self, target: ast.expr, value: Any, local: dict[str, Any]) -> None:
        if isinstance(target, ast.Name):
            local[target.id] = value
        elif isinstance(target, ast.Tuple) and not any(isinstance(t, ast.Starred)
                                                       for t in target.elts):
            if not _is_sequence(value) or len(value) != len(target.elts):
                raise ExprError(f"cannot unpack {_short(repr(value))} into "
                                f"'{ast.unparse(target)}'", "loop over items of that many values")
            for part, item in zip(target.elts, value):
                self.bind(part, item, local)
        else:
            self.generic_visit(target)

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        value = self.visit(node.value)
        if not isinstance(value, TensorInfo) or node.attr not in _SHAPE_ATTRS:
            raise ExprError(f"attribute access '{ast.unparse(node)}' is not allowed",
                            "only input.channels, input.shape and input.rank exist")
        if node.attr == "channels" and len(value.shape) < 2:  # [B] has no channel dimension
            raise ExprError(f"'{ast.unparse(node)}' of a tensor of shape {list(value.shape)}: "
                            "it has no channel dimension", "use input.shape or input.rank")
        return list(value.shape) if node.attr == "shape" else getattr(value, node.attr)

    def visit_Call(self, node: ast.Call) -> Any:
        name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        helpers = self.scope.get(FUNCTIONS_KEY) or {}
        if isinstance(node.func, ast.Name) and name in helpers and name not in _FUNCTIONS:
            args = [self.visit(a) for a in node.args]
            if any(k.arg is None for k in node.keywords):
                raise ExprError(f"'**' in a call to '{name}' is not allowed", "name each argument")
            return helpers[name].call(self, args, {k.arg: self.visit(k.value) for k in node.keywords})
        if name not in _FUNCTIONS:
            known = sorted([*_FUNCTIONS, *helpers])
            raise ExprError(f"call to '{name}' is not allowed", suggest(name, known, n=1) or
                            f"only {', '.join(known)} can be called (and the spec's `functions:`)")
        if node.keywords:
            raise ExprError(f"keyword arguments are not allowed in a call to '{name}'",
                            "pass the built-ins' arguments by position")
        args = [self.visit(a) for a in node.args]
        for arg in args if name != "len" else ():
            self.charge(arg)  # read through
        if name == "sum" and args and isinstance(args[0], (list, tuple)):
            self.checked([*args[0], *args[1:]])  # sum(lists, []) concatenates them
        if name == "round" and len(args) == 2 and isinstance(args[1], int) and abs(args[1]) > 400:
            raise ExprError(f"cannot compute '{_short(ast.unparse(node))}': too many digits",
                            "round to fewer than 400 digits")
        try:
            size = _LENGTHS[name](*args) if name in _LENGTHS else None
            if size is not None:  # refused before it is made
                _check_limit("sequence_length", size, "make a shorter list")
                self.step(size if self.loops else 0)
            result = _FUNCTIONS[name](*args)
        except OverflowError:
            raise _overflow(node) from None
        except (TypeError, ValueError, ZeroDivisionError) as err:
            source, called = ast.unparse(node), f"{name}({', '.join(map(reprlib.repr, args))})"
            called = "" if called == source else f" = {_short(called)}"
            raise ExprError(f"cannot compute '{_short(source)}'{called}: {err}",
                            _DOMAIN.get(name, "")) from None
        return result if size is not None else self.checked(result)


def _overflow(node: ast.AST) -> ExprError:
    return ExprError(f"'{_short(ast.unparse(node))}' overflows: the result is too large for a float",
                     "compute with smaller numbers")
