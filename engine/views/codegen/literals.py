"""Literals, names and tokens: how values and names are written in a generated file."""

from __future__ import annotations

import inspect
import json
import keyword
import math
from dataclasses import dataclass
from typing import Any

from engine.compiler.ir import Diagnostic, Node, SpecError

_REQ = inspect.Parameter.empty  # a constructor argument without a default
_MISSING = object()
# Names the generated file uses at module level: never reused for variables or parameters.
_GLOBALS = {"torch", "nn", "F", "Tensor", "OrderedDict", "torchvision", "math", "build",
            "cat_broadcast_batch", "self", "super", "getattr", "isinstance", "float"}
_STANDARD_IMPORTS = {
    "torch": "import torch",
    "nn": "from torch import nn",
    "F": "import torch.nn.functional as F",
    "Tensor": "from torch import Tensor",
    "OrderedDict": "from collections import OrderedDict",
    "math": "import math",
    "torchvision": "import torchvision",
}


# ---- literals and tokens --------------------------------------------------------------------

@dataclass(frozen=True)
class _A:
    """One constructor argument of a rendered layer."""

    name: str
    value: Any
    default: Any = _REQ
    positional: bool = False



def _lit(value: Any) -> str:
    """A Python literal, written the way people write them."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return f'float("{value}")'
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value) if value.isprintable() else repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_lit(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_lit(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _norm(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_norm(v) for v in value)
    return value


def _vkey(value: Any) -> tuple[str, str]:
    value = _norm(value)
    return type(value).__name__, repr(value)


def _same(a: Any, b: Any) -> bool:
    return _vkey(a) == _vkey(b)


def _is_attr(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _camel(name: str) -> str:
    out = "".join(p[:1].upper() + p[1:] for p in name.replace("-", "_").split("_")) or "Graph"
    return out if out[0].isalpha() else f"Block{out}"


def _child(expr: str, name: str, indexed: bool = False) -> str:
    if indexed:
        return f"{expr}[{name}]"
    return f"{expr}.{name}" if _is_attr(name) else f"getattr({expr}, {_lit(name)})"


# Tokens (hashable, so a class's structure can be a dict key):
#   ("t", text)  ("h", hole)  ("cat", toks)  ("cls", group id)
#   ("call", callee tok, args) with args ("pos", tok) | ("kw", name, hole)
#   ("seq", positional, ((name, tok), ...))  a multi-line nn.Sequential

@dataclass(frozen=True)
class _Hole:
    """A literal in a class body: what it is called if it becomes a parameter."""

    name: str
    owner: str
    default: Any = _REQ


class _Builder:
    """Collects one instance's literals (holes) while its class body is being written."""

    def __init__(self):
        self.values: list[Any] = []
        self.holes: list[_Hole] = []

    def hole(self, value: Any, name: str, owner: str, default: Any = _REQ) -> int:
        self.values.append(value)
        self.holes.append(_Hole(name, owner, default))
        return len(self.values) - 1

    def call(self, callee: str | tuple, args: list[_A], owner: str) -> tuple:
        toks = tuple(("pos", ("h", self.hole(a.value, a.name, owner, a.default))) if a.positional
                     else ("kw", a.name, self.hole(a.value, a.name, owner, a.default))
                     for a in args)
        return ("call", ("t", callee) if isinstance(callee, str) else callee, toks)



class _Raw:
    """A value written as given (an expression such as `torch.float16`, not a literal)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text



def _error(node: Node, message: str, hint: str = "") -> SpecError:
    return SpecError([Diagnostic(f"codegen: {message}", node.loc, node.path, hint)])
