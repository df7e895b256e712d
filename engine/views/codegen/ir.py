"""The records passed between codegen's steps: the tokens a class body is made of, the literals
in it (holes), the graphs that become class instances, and the classes they share."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from engine.compiler.ir import Graph, Node, SpecError, located_error

REQUIRED = inspect.Parameter.empty  # a constructor argument without a default
# The loop variable of an init loop: its name is only chosen when the class is written, once the
# class's parameter names (which it must not shadow) are known.
LOOP_VAR = "\x00layer"
SECTIONS = {  # what follows the layers in an __init__, in this order, with its comment
    "init": "# initialisation: the spec's `init:` rules",
    "spectral_norm": "# spectral normalisation (`spectral_norm: true`), after initialisation",
    "freeze": "# frozen (`freeze: true`): not trained",
    "tie": "# tied (`tie:`): one tensor under two names",
}


def codegen_error(node: Node, message: str, hint: str = "") -> SpecError:
    """The error a spec that cannot be written out raises, located at `node`."""
    return located_error(f"codegen: {message}", node.loc, node.path, hint)


# ---- tokens: a class body before its literals are written ----------------------------------
# Frozen, so that a class body is hashable (instances with equal bodies share a class) and two
# token kinds with equal fields never compare equal.

@dataclass(frozen=True)
class Text:
    """Code written as is."""

    text: str


@dataclass(frozen=True)
class Lit:
    """A literal of the instance: written as its hole's final text (a value or a parameter)."""

    hole: int


@dataclass(frozen=True)
class Cat:
    """Tokens written one after the other."""

    parts: tuple[Token, ...]


@dataclass(frozen=True)
class ClassRef:
    """A generated class, by its index in the file's classes (named only at the end)."""

    gid: int


@dataclass(frozen=True)
class Pos:
    """A positional argument."""

    tok: Token


@dataclass(frozen=True)
class Kw:
    """A keyword argument, left out where its literal is the default in every instance."""

    name: str
    hole: int


@dataclass(frozen=True)
class Call:
    callee: Token
    args: tuple[Pos | Kw, ...]


@dataclass(frozen=True)
class Seq:
    """An nn.Sequential, with an OrderedDict of names unless they are 0, 1, 2..."""

    positional: bool
    items: tuple[tuple[str, Token], ...]


@dataclass(frozen=True)
class Loop:
    """`for layer in seq: if isinstance(layer, cls): body` (body uses LOOP_VAR)."""

    seq: str
    cls: str
    body: tuple[Token, ...]


Token = Text | Lit | Cat | ClassRef | Call | Seq | Loop


@dataclass(frozen=True)
class Statement:
    """A statement after the layers of an __init__, in one of SECTIONS."""

    section: str
    tok: Token


# ---- literals -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Arg:
    """One constructor argument of a rendered layer."""

    name: str
    value: Any
    default: Any = REQUIRED
    positional: bool = False


@dataclass(frozen=True)
class Hole:
    """A literal in a class body: what it is called if it becomes a parameter."""

    name: str
    owner: str  # the module it is an argument of, to prefix a name already taken
    default: Any = REQUIRED


@dataclass
class Literals:
    """One instance's literals (values, by hole), collected while its class body is written."""

    values: list[Any] = field(default_factory=list)
    holes: list[Hole] = field(default_factory=list)

    def hole(self, value: Any, name: str, owner: str, default: Any = REQUIRED) -> int:
        self.values.append(value)
        self.holes.append(Hole(name, owner, default))
        return len(self.values) - 1

    def call(self, callee: str | Token, args: list[Arg], owner: str) -> Call:
        """`callee(args)`, each argument's value a hole."""
        toks = tuple(Pos(Lit(self.hole(a.value, a.name, owner, a.default))) if a.positional
                     else Kw(a.name, self.hole(a.value, a.name, owner, a.default))
                     for a in args)
        return Call(Text(callee) if isinstance(callee, str) else callee, toks)


# ---- instances and classes ------------------------------------------------------------------

@dataclass
class Body:
    """One instance's class body: equal bodies (all but `values`) share a class."""

    lines: tuple[Token, ...]  # the __init__ statements that make its layers
    inits: tuple[Statement, ...]
    forward: str
    holes: tuple[Hole, ...]
    values: list[Any]  # its literals, by hole


@dataclass
class Param:
    """A constructor parameter of a generated class."""

    name: str
    first_use: int  # the first hole it stands for: parameters are listed in order of use
    holes: list[int]  # the literals it stands for (none: a block param used in `width * 4`)
    default: Any = REQUIRED
    block_param: str | None = None


@dataclass
class Inst:
    """A graph that becomes an instance of a generated class."""

    node: Node | None  # None for a network
    graph: Graph
    path: str
    base: str  # class name stem
    order: int  # position in the model, for naming and ordering classes
    network: str | None = None
    children: list[Inst] = field(default_factory=list)  # class instances directly inside
    block_args: dict | None = None  # a spec block instance's params
    height: int = 0
    values: list = field(default_factory=list)  # its literals, by hole
    group: Group | None = None

    def param_value(self, p: Param) -> Any:
        return self.values[p.holes[0]] if p.holes else self.block_args[p.block_param]


@dataclass(eq=False)
class Group:
    """One generated class: the instances sharing a structure, and what varies between them."""

    gid: int
    base: str
    lines: tuple[Token, ...]
    inits: tuple[Statement, ...]
    forward: str
    holes: tuple[Hole, ...]
    insts: list[Inst] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    text: dict[int, str] = field(default_factory=dict)  # hole -> literal, parameter or expression
    omitted: set[int] = field(default_factory=set)  # keyword holes left at their default
    name: str = ""

    def signature(self) -> list[Param]:
        """Required parameters first, then those with defaults, each in order of first use."""
        return ([p for p in self.params if p.default is REQUIRED]
                + [p for p in self.params if p.default is not REQUIRED])
