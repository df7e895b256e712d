"""How values and names are written in a generated file: literals, identifiers, attribute
access, and the module-level names every generated file may use."""

from __future__ import annotations

import json
import keyword
import math
import re
from typing import Any

from engine.compiler.build import var

# Names the generated file uses at module level: never reused for variables or parameters.
GLOBALS = {"torch", "nn", "F", "Tensor", "OrderedDict", "torchvision", "math", "build",
           "cat_broadcast_batch", "self", "super", "getattr", "isinstance", "float"}
# The import line of each standard module-level name, added where the file uses the name.
STANDARD_IMPORTS = {
    "torch": "import torch",
    "nn": "from torch import nn",
    "F": "import torch.nn.functional as F",
    "Tensor": "from torch import Tensor",
    "OrderedDict": "from collections import OrderedDict",
    "math": "import math",
    "torchvision": "import torchvision",
}


class Raw:
    """A value written as given (an expression such as `torch.float16`, not a literal)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def literal(value: Any) -> str:
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
        return "(" + ", ".join(literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def value_key(value: Any) -> tuple[str, str]:
    """A hashable key under which two values are the same literal (a list equals its tuple,
    1 differs from 1.0 and True)."""
    value = _as_tuple(value)
    return type(value).__name__, repr(value)


def same(a: Any, b: Any) -> bool:
    return value_key(a) == value_key(b)


def _as_tuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value


def is_attr(name: str) -> bool:
    """Whether `name` can be written as an attribute (`self.name`) or a parameter."""
    return name.isidentifier() and not keyword.iskeyword(name)


def camel(name: str) -> str:
    """A class name from a spec name: `basic_block` -> `BasicBlock`; any other character
    (`resnet-50.v1.5`, `my model`, quotes) separates words, so the result is an identifier."""
    words = re.sub(r"[^0-9A-Za-z]+", "_", name).split("_")
    out = "".join(w[:1].upper() + w[1:] for w in words) or "Graph"
    out = out if out[0].isalpha() else f"Block{out}"
    return f"{out}_" if keyword.iskeyword(out) else out  # `name: None` -> class None_


# ---- text from a spec inside the generated file: never code ----------------------------------
# Every string that comes from a spec (its name, its comment, file names, --set values) reaches
# the generated file through one of these two, so no spec can end a comment or a docstring early
# and write code after it.

def comment_text(text: str) -> str:
    """Any text as (the rest of) one comment line: a newline or other control character, which
    would end the comment, is written as its escape (`\\n`)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in str(text))


def docstring_text(text: str) -> str:
    """Any text inside a triple-double-quoted docstring: backslashes doubled, a run of three
    double quotes (which would close it) written as three single quotes, control characters
    other than newlines escaped, and a final double quote kept off the closing quotes."""
    out = str(text).replace("\\", "\\\\").replace('"""', "'''")
    out = "".join(c if c.isprintable() or c == "\n" else c.encode("unicode_escape").decode()
                  for c in out)
    return out + " " if out.endswith('"') else out


def child(expr: str, name: str, indexed: bool = False) -> str:
    """The submodule `name` of `expr`: `expr.name`, `expr[0]` or `getattr(expr, "1x1")`."""
    if indexed:
        return f"{expr}[{name}]"
    return f"{expr}.{name}" if is_attr(name) else f"getattr({expr}, {literal(name)})"


def variable(name: str) -> str:
    """A node's local variable in a forward: the engine's, kept off the file's global names."""
    out = var(name)
    return f"{out}_" if out in GLOBALS else out
