"""The data passed between pipeline stages: source locations, diagnostics, the located YAML
containers, the resolved graph and the shaped graph.

load -> resolve -> validate -> shapes -> build all read and write these types and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: the IR itself needs no torch
    from torch import nn


@dataclass(frozen=True)
class Loc:
    """A place in a YAML file (1-based line and column)."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file


@dataclass
class Diagnostic:
    """One error: where, which node, what was expected and found, and what to write instead."""

    message: str
    loc: Loc | None = None
    path: str = ""
    hint: str = ""
    severity: str = "error"


class SpecError(Exception):
    """All the errors found in a spec; the CLI prints them with source excerpts."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("\n".join(_one_line(d) for d in diagnostics))


def _one_line(d: Diagnostic) -> str:
    where = f"{d.loc}: " if d.loc else ""
    node = f" [{d.path}]" if d.path else ""
    hint = f" (hint: {d.hint})" if d.hint else ""
    return f"{where}{d.severity}:{node} {d.message}{hint}"


def located_error(message: str, where: Loc | str | os.PathLike | None = None, path: str = "",
                  hint: str = "") -> SpecError:
    """A SpecError holding one error: `message` at `where`, on spec path `path`, with a `hint`.

    `where` is a Loc, or a file or folder name (a str or Path: the error points at the whole
    file), or None (no place, e.g. a bad command-line option). The caller raises it."""
    loc = where if where is None or isinstance(where, Loc) else Loc(str(where))
    return SpecError([Diagnostic(message, loc, path, hint)])


class _Invalid:
    """The value of anything that failed to resolve (its error is already reported).

    Whatever reads it stays quiet, so one mistake gives one error, not a cascade."""

    def __repr__(self) -> str:
        return "<invalid>"


INVALID = _Invalid()


def dedupe(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """One error per source position: the first (most specific) one reported there."""
    seen, out = set(), []
    for d in diagnostics:
        key = str(d.loc) if d.loc and d.loc.line else d.message
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


@dataclass(frozen=True)
class Ref:
    """A reference to a value: a node or graph input, optionally one named output of it."""

    node: str
    output: str | None = None

    def __str__(self) -> str:
        return f"{self.node}.{self.output}" if self.output else self.node


@dataclass
class Deferred:
    """An expression that needs the upstream shape (`input.channels`); evaluated by the shape stage."""

    source: str
    scope: dict[str, Any]
    loc: Loc | None = None

    def __repr__(self) -> str:
        return f"${{{self.source}}}"


@dataclass
class Node:
    """One node of a resolved graph.

    kind: 'prim' (a registered block), 'graph' (a block defined in a spec, or an inline
    `graph:`/`seq:`/`repeat`, whose nodes are in `body`), 'param' (a learned tensor
    registered on the enclosing module).
    """

    name: str
    op: str
    kind: str
    inputs: list[Ref]
    args: dict[str, Any] = field(default_factory=dict)
    loc: Loc | None = None
    path: str = ""
    body: Graph | None = None
    when: Any = True
    passes: int = 0  # which input a node switched off by `when:` passes on (`otherwise:`)
    share: str | None = None
    shared: Node | None = None  # the earlier node whose module this one reuses
    tie: dict[str, str] = field(default_factory=dict)  # param name -> "node.path.param" in the network
    init: dict[str, Any] = field(default_factory=dict)
    repeat: int = 0  # for a `repeat:` node, how many times its op is applied
    freeze: bool = False  # parameters under this node are not trained (requires_grad False)
    spectral_norm: bool = False  # its `weight` is divided by its largest singular value
    arg_locs: dict[str, Loc] = field(default_factory=dict)  # where each argument's value is
    arg_key_locs: dict[str, Loc] = field(default_factory=dict)  # ... and its key


@dataclass
class Graph:
    """An ordered DAG of nodes with named inputs and outputs (a network or a block instance)."""

    name: str
    inputs: dict[str, Any]  # name -> declared shape (top level) or None (block)
    nodes: list[Node]
    outputs: dict[str, Ref]
    loc: Loc | None = None
    input_locs: dict[str, Loc] = field(default_factory=dict)

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)


@dataclass
class Spec:
    """A resolved spec: one or several networks, plus what the later stages need to know."""

    name: str
    file: str
    networks: dict[str, Graph]
    params: dict[str, Any]
    init: dict[str, Any] = field(default_factory=dict)
    rename: dict[str, str] = field(default_factory=dict)
    doc: Any = None  # the merged document, kept for schema validation and `engine resolve`
    multi: bool = False  # declared with `networks:` (build returns a ModuleDict)


@dataclass
class TensorInfo:
    """A statically known tensor: its shape, and whether it is a channels-first feature map."""

    shape: tuple[int, ...]
    channels_first: bool = False
    dtype: str = "float32"

    @property
    def channels(self) -> int:
        return self.shape[1]

    @property
    def rank(self) -> int:
        return len(self.shape)


# ---- located containers: what load returns ---------------------------------------------
class LocDict(dict):
    """A dict that knows where it and each of its keys and values were written."""

    loc: Loc
    replace: bool = False

    def __init__(self, *args, loc: Loc | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loc = loc or Loc("<memory>")
        self.key_locs: dict[Any, Loc] = {}
        self.value_locs: dict[Any, Loc] = {}

    def key_loc(self, key: Any) -> Loc:
        return self.key_locs.get(key, self.loc)

    def value_loc(self, key: Any) -> Loc:
        return self.value_locs.get(key, self.key_loc(key))


class LocList(list):
    """A list that knows where it and each of its items were written."""

    def __init__(self, *args, loc: Loc | None = None):
        super().__init__(*args)
        self.loc = loc or Loc("<memory>")
        self.item_locs: list[Loc] = []

    def item_loc(self, i: int) -> Loc:
        return self.item_locs[i] if i < len(self.item_locs) else self.loc


# ---- the shaped graph: what the shape stage returns -------------------------------------
@dataclass
class NodeShapes:
    """What the shape stage learned about one node.

    `layer` is a meta module of the node's op and arguments, one per distinct pair and shared by
    the nodes that have them: what views read (parameter shapes, labels). `module`, the node's
    own meta module that build materialises, is made on first use by `make`: a summary of
    densenet121 constructs 133 modules instead of 427.
    """

    inputs: list[TensorInfo]
    outputs: tuple[TensorInfo, ...]
    output_names: tuple[str, ...]
    layer: nn.Module | None = None  # a primitive node's meta module, maybe shared with its likes
    args: dict = field(default_factory=dict)  # the arguments after evaluating Deferred ones
    macs: int = 0  # multiply-accumulates of one forward at the spec's input shapes (children summed)
    make: Callable[[], nn.Module] | None = field(default=None, repr=False, compare=False)
    _own: nn.Module | None = field(default=None, repr=False, compare=False)

    @property
    def module(self) -> nn.Module | None:
        """This node's own meta module (shared nodes: their target's), made on first use."""
        if self._own is None and self.make is not None:
            self._own, self.make = self.make(), None
        return self._own

    @module.setter
    def module(self, module: nn.Module | None) -> None:
        self._own, self.make = module, None


@dataclass
class Shaped:
    spec: Spec
    nodes: dict[str, NodeShapes]  # by node path
    inputs: dict[str, dict[str, TensorInfo]]  # network -> input name -> info
