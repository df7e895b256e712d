"""The registries: the one class behind every table of names a spec or recipe may write, its
did-you-mean, and the registry of primitive blocks.

A block registers itself with `@register("conv", category="conv", in_dim=1, ...)`. The engine
reads the constructor's typed keyword arguments (named exactly like the YAML keys) to validate
specs and generate the JSON Schema; `in_dim` says which dimension of the first input fills the
conventional `in_size` argument, so specs never write input sizes by hand; `category` names the
block's family (its file in `blocks/`), which the renderer colours and `blocks/README.md` lists.

The training side's registries (procedures, datasets, losses, ...) are instances of the same
`Registry` class: it lives here because `blocks` is the lowest layer and may import no other.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable
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
    category: str  # the block's family and file: conv, norm, attention, ... (colours diagrams)
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


class Registry:
    """Names -> entries of one kind (blocks, procedures, losses, ...). A duplicate name is an
    error; `hint` answers an unknown name with the close ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self.entries: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator: add the decorated object under `name`."""

        def wrap(obj: Any) -> Any:
            self.add(name, obj)
            return obj

        return wrap

    def add(self, name: str, entry: Any) -> None:
        if name in self.entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice "
                             f"({_describe(self.entries[name])} and {_describe(entry)})")
        self.entries[name] = entry

    def get(self, name: str) -> Any:
        return self.entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return sorted(self.entries)

    def hint(self, name: str) -> str:
        return suggest(str(name), self.names()) or f"known {self.kind}s: {', '.join(self.names())}"


def _describe(entry: Any) -> str:
    # a block's entry is its BlockInfo: name the class it wraps
    return getattr(getattr(entry, "cls", entry), "__qualname__", repr(entry))


def suggest(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """The one did-you-mean: "did you mean 'conv'?" for up to `n` close candidates, else ""."""
    close = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=n, cutoff=0.6)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


REGISTRY = Registry("block")


# the block families: one file each in blocks/, one colour each in diagrams (a plugin's block
# picks the family it belongs to)
CATEGORIES = ("conv", "linear", "norm", "activation", "pool", "resample", "attention",
              "transformer", "recurrent", "encoding", "latent", "style", "color", "regularize",
              "tensor_ops", "merge", "parameter")


def register(name: str, *, category: str, **info: Any):
    """Class decorator: add a block under its YAML name, in its family `category`.

    This is `engine.register_block` for your own blocks: the constructor's typed keyword
    arguments are the YAML keys; `in_dim` says which input dimension fills `in_size`; `example`
    (args and input shapes) lets tests build and run it."""
    if category not in CATEGORIES:
        raise ValueError(f"block '{name}': unknown category '{category}'; "
                         f"{suggest(category, CATEGORIES, n=1) or 'one of ' + ', '.join(CATEGORIES)}")

    def wrap(cls: type) -> type:
        REGISTRY.add(name, BlockInfo(name=name, cls=cls, category=category, **info))
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
    return REGISTRY.get(name) if name in REGISTRY else None


def all_blocks() -> dict[str, BlockInfo]:
    _load_all()
    return dict(sorted(REGISTRY.entries.items()))


_loaded = False  # every lookup asks: after the first, a flag instead of two imports (thousands a spec)


def _load_all() -> None:
    # Importing the block modules runs their @register decorators; installed plugins (the
    # `engine.blocks` entry points) register theirs the first time the registry is read.
    global _loaded
    if _loaded:
        return
    import engine.blocks  # noqa: F401
    from engine.blocks.plugins import load_entry_points
    load_entry_points()
    _loaded = True


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
