"""Named registries for everything a recipe names: procedures, datasets, transforms, optimizers,
schedulers, losses, metrics. (Primitive blocks have theirs in `blocks/registry.py`.)

A duplicate name is an error; an unknown name suggests the close ones. YAML never reaches
`eval`, `globals()` or dotted imports: it can only name what is registered here.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self.entries: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        def wrap(obj: Any) -> Any:
            if name in self.entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self.entries[name] = obj
            return obj

        return wrap

    def add(self, name: str, obj: Any) -> None:
        self.register(name)(obj)

    def get(self, name: str) -> Any:
        return self.entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return sorted(self.entries)

    def hint(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self.names(), n=3, cutoff=0.6)
        if close:
            return f"did you mean {' or '.join(repr(c) for c in close)}?"
        return f"known {self.kind}s: {', '.join(self.names())}"


PROCEDURES = Registry("procedure")
DATASETS = Registry("dataset")
TRANSFORMS = Registry("transform")
OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")
LOSSES = Registry("loss")
METRICS = Registry("metric")


def load_all() -> None:
    """Import the modules whose decorators fill the registries."""
    from engine.train import procedures  # noqa: F401
