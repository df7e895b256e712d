"""The one rule for the names a spec gives nodes, repeat children and inputs.

A node name becomes a submodule's attribute name (torch's `add_module` takes any string without
`.`), so validation must refuse exactly what build cannot use: anything but ASCII letters, digits,
`_` and `-` (Python identifiers admit Unicode that `torch.nn` and codegen should not have to; `-`
is there for names such as torchvision RegNet's `block2-0`), and the names an `nn.Module` already
owns (`training`, `forward`, `__class__`, `_modules`, ...). Keywords such as `in` are fine: build
writes them as `in_` and `getattr(self, 'in')`, and `block2-0` as `block2_0` and
`getattr(self, 'block2-0')` (engine.compiler.build.variables keeps a graph's variables distinct).

An input name is a parameter of the generated `forward`, never an attribute (`attribute=False`):
ASCII letters, digits and `_` only, and it may be `code` or `training`.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from torch import nn

NAME = re.compile(r"[A-Za-z0-9_-]+")  # node and repeat child names: a submodule's name
INPUT_NAME = re.compile(r"[A-Za-z0-9_]+")  # input names: a forward() parameter


@lru_cache(maxsize=1)
def reserved() -> frozenset[str]:
    """Attributes of every module the engine builds (`code`, `param_inits` and
    `reset_parameters` are added by engine.compiler.build.GeneratedModule)."""
    return frozenset({*dir(nn.Module()), "code", "param_inits", "reset_parameters"})


def name_problem(name: object, what: str = "node name",
                 attribute: bool = True) -> tuple[str, str] | None:
    """(message, hint) when `name` cannot name a node, None when it can. An input is only a
    variable, never an attribute (`attribute=False`): `code` or `training` may name one, `-` may
    not appear in it."""
    rule, chars = (NAME, "ASCII letters, digits and _ or -") if attribute else (
        INPUT_NAME, "ASCII letters, digits and _")
    if not isinstance(name, str) or not rule.fullmatch(name):
        return f"{what} {name!r} must be {chars}", \
            f"rename it, e.g. {_plain(str(name), keep_dash=attribute)}"
    if attribute and name in reserved():
        where = "nn.Module's own attribute" if name.startswith("_") else f"nn.Module.{name}"
        return f"{what} '{name}' clashes with {where}", f"rename it, e.g. {name.strip('_')}_x"
    return None


def _plain(name: str, keep_dash: bool = True) -> str:
    """The nearest valid name: accents dropped, anything else turned into `_` (naïve -> naive)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    other = r"[^A-Za-z0-9_-]+" if keep_dash else r"[^A-Za-z0-9_]+"
    return re.sub(other, "_", ascii_name).strip("_") or "node_1"
