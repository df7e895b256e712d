"""The one registry mapping YAML op names to primitive blocks.

A block registers itself with `@register("conv", in_dim=1, ...)`. The engine reads the
constructor's typed keyword arguments (named exactly like the YAML keys) to validate specs and
generate the JSON Schema; `in_dim` says which dimension of the first input fills the
conventional `in_size` argument, so specs never write input sizes by hand.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any

IN_SIZE = "in_size"  # the one conventional name of the inferred input-size argument
IN_SIZES = "in_sizes"  # the sizes of every input at `in_dim` (attention over keys of another width)
INFERRED = (IN_SIZE, IN_SIZES)  # arguments the engine fills; a spec never writes them


def inferred_args(info: BlockInfo, shapes: list[tuple[int, ...]]) -> dict[str, Any]:
    """`in_size` (dim `in_dim` of input 0) and, where the constructor takes it, `in_sizes`
    (dim `in_dim` of every input, None for an input without that dim: a mask, a token id)."""
    if info.in_dim is None or not shapes:
        return {}
    out: dict[str, Any] = {IN_SIZE: shapes[0][info.in_dim]}
    if IN_SIZES in info.args:
        need = abs(info.in_dim) if info.in_dim < 0 else info.in_dim + 1
        out[IN_SIZES] = [s[info.in_dim] if len(s) >= need else None for s in shapes]
    return out


@dataclass
class Arg:
    name: str
    annotation: Any
    default: Any = inspect.Parameter.empty

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


@dataclass
class BlockInfo:
    """What the engine needs to know about a primitive block besides its class."""

    name: str
    cls: type
    in_dim: int | None = None  # dim of input 0 that gives `in_size`; None if not needed
    inputs: int | tuple[int, int] = 1  # exact count or (min, max); max -1 = unbounded
    outputs: tuple[str, ...] = ("out",)
    layout: bool | None = None  # output is channels-first (True), not (False), or as input (None)
    example: dict[str, Any] = field(default_factory=dict)
    kind: str = "prim"
    same_shape: bool = False  # output shape == input shape: the shape stage need not run it

    @property
    def args(self) -> dict[str, Arg]:
        return block_args(self.cls)

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.cls) or ""

    def accepts_inputs(self, n: int) -> bool:
        lo, hi = (self.inputs, self.inputs) if isinstance(self.inputs, int) else self.inputs
        return lo <= n and (hi < 0 or n <= hi)


REGISTRY: dict[str, BlockInfo] = {}


def register(name: str, **info: Any):
    """Class decorator: add a block under its YAML name. A duplicate name is an error."""

    def wrap(cls: type) -> type:
        if name in REGISTRY:
            raise ValueError(f"block '{name}' is registered twice "
                             f"({REGISTRY[name].cls.__qualname__} and {cls.__qualname__})")
        REGISTRY[name] = BlockInfo(name=name, cls=cls, **info)
        return cls

    return wrap


@functools.cache
def block_args(cls: type) -> dict[str, Arg]:
    """The typed keyword arguments of a block constructor, in declaration order."""
    hints = typing.get_type_hints(cls.__init__)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return {p.name: Arg(p.name, hints.get(p.name, Any), p.default) for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def lookup(name: str) -> BlockInfo | None:
    _load_all()
    return REGISTRY.get(name)


def suggest(name: str, candidates) -> str:
    close = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=3, cutoff=0.6)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def all_blocks() -> dict[str, BlockInfo]:
    _load_all()
    return dict(sorted(REGISTRY.items()))


def _load_all() -> None:
    # Importing the block modules runs their @register decorators.
    import blocks  # noqa: F401


def type_name(annotation: Any) -> str:
    """A short human name for an argument type: int, float, list[int], int | list[int] ..."""
    if annotation is Any:
        return "any"
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        inner = typing.get_args(annotation)
        return f"list[{type_name(inner[0])}]" if inner else "list"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def check_type(value: Any, annotation: Any) -> bool:
    """Whether a resolved YAML value fits an argument's annotation (ints are valid floats)."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        return any(check_type(value, a) for a in typing.get_args(annotation))
    if origin is list:
        inner = typing.get_args(annotation)
        return isinstance(value, (list, tuple)) and all(
            check_type(v, inner[0]) for v in value) if inner else isinstance(value, (list, tuple))
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is type(None):
        return value is None
    return isinstance(value, annotation)
