"""The diff's records: what changed between two specs, as the matcher finds it and the reports show it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ADDED, REMOVED, CHANGED, RENAMED, UNCHANGED = "added", "removed", "changed", "renamed", "unchanged"
_NUMBERED = re.compile(r"^(.*?)(\d+)$")


@dataclass
class Group:
    """Added (or removed) nodes reported as one item: a node, or numbered siblings with one op."""

    kind: str  # "added" | "removed"
    label: str  # "layer3.6-22", "fc", "features.1,4,8"
    op: str
    paths: list[str]  # top paths of the group (B's for added, A's for removed)
    params: int
    macs: int
    network: str = ""

    @property
    def count(self) -> int:
        return len(self.paths)


@dataclass
class NodeChange:
    """A node present in both specs (matched by path, alignment or rename) that differs."""

    path: str  # in B
    path_a: str  # in A (differs when renamed)
    op: str
    depth: int
    network: str = ""
    op_a: str | None = None  # set when the op changed
    args: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (old, new)
    repeat: tuple[int, int] | None = None
    inputs: tuple[list[str], list[str]] | None = None  # edges rewired: (A's inputs, B's inputs)
    outputs: tuple[dict, dict] | None = None  # a graph's declared outputs changed
    shapes: tuple[list, list] | None = None  # output shapes
    in_shapes: tuple[list, list] | None = None  # input shapes (reported when outputs kept theirs)
    params: tuple[int, int] = (0, 0)
    macs: tuple[int, int] = (0, 0)
    inner: int = 0  # descendants not unchanged (changed, added, removed, renamed)
    structural: bool = False  # a definition changed here or below (not only propagated shapes)

    @property
    def own(self) -> bool:
        """Whether the node's own definition changed (op, arguments, repeat count, wiring)."""
        return bool(self.op_a or self.args or self.repeat or self.inputs or self.outputs)


@dataclass
class NetworkDiff:
    name_a: str | None
    name_b: str | None
    params: tuple[int, int]
    macs: tuple[int, int]
    inputs: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (A shape, B shape)
    outputs: tuple[dict, dict] | None = None

    @property
    def name(self) -> str:
        return self.name_b or self.name_a or ""


@dataclass
class WeightTransfer:
    """state_dict entries of A against B's: by key, then shape."""

    unchanged: list[str]  # same key, same shape: loads as is
    changed: dict[str, tuple[list, list]]  # same key, other shape: key -> (A shape, B shape)
    new: dict[str, list]  # only in B: key -> shape
    dropped: dict[str, list]  # only in A: key -> shape
    renamed: dict[str, str] = field(default_factory=dict)  # A key -> B key, loadable via renames
    groups: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # new/dropped by group


@dataclass
class DiffResult:
    a: str
    b: str
    status: dict[str, str]  # node path (B's; A's for removed) -> added/removed/changed/renamed/unchanged
    renames: dict[str, str]  # A path -> B path (renamed nodes and their descendants)
    added: list[Group]
    removed: list[Group]
    changes: list[NodeChange]  # pre-order, B's order
    networks: list[NetworkDiff]
    params: tuple[int, int]
    macs: tuple[int, int]
    weights: WeightTransfer
    pairs: dict[str, str] = field(default_factory=dict)  # B path -> A path of every matched node
    file_a: str = ""
    file_b: str = ""
    multi: bool = False

    @property
    def renamed(self) -> dict[str, str]:
        """The renames as written (a node renamed, not a descendant carried along)."""
        return {a: b for a, b in self.renames.items()
                if a.rpartition(".")[0] not in self.renames}


def same_run(name: str, other: str) -> bool:
    """Whether two sibling names are numbered items of one sequence (`conv3`, `conv4`)."""
    m, lm = _NUMBERED.match(name), _NUMBERED.match(other)
    return bool(m and lm and m.group(1) == lm.group(1))


def run_label(names: list[str]) -> str:
    """The one label of a numbered run: ['layer6', 'layer7', 'layer8', 'layer10'] -> 'layer6-8,10'."""
    return _NUMBERED.match(names[0]).group(1) + _ranges([int(_NUMBERED.match(n).group(2)) for n in names])


def _ranges(numbers: list[int]) -> str:
    """[6, 7, 8, 10] -> '6-8,10' (the first eight ranges, then '...')."""
    parts, start = [], numbers[0]
    for prev, cur in zip(numbers, numbers[1:] + [None]):
        if cur != prev + 1:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = cur
    return ",".join(parts[:8] + (["..."] if len(parts) > 8 else []))
