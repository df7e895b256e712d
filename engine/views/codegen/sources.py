"""Copied block sources: a block's class (or its forward over a torch base), with the
module-level helpers and imports it needs."""

from __future__ import annotations

import ast
import inspect
import math
import sys
from typing import Any

import torch
from torch import nn

from engine.compiler.ir import Node
from engine.views.codegen.literals import _STANDARD_IMPORTS, _error


class _Sources:
    """The _Codegen part that copies block classes and their helpers into the file."""

    # -- copied block sources --
    def _helper(self, cls: type, node: Node, base: type | None = None) -> None:
        """Add a block's class (or, over a torch base, its forward only) to the file."""
        name = cls.__name__
        if self._copied.get(name, cls) is not cls:
            raise _error(node, f"two different block classes are named {name}",
                         "rename one of them in blocks/")
        if name in self.helpers:
            return
        self._copied[name] = cls
        module = sys.modules[cls.__module__]
        source = inspect.getsource(module)
        tree = ast.parse(source)
        lines = source.splitlines()
        cdef = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
        if cdef is None:
            raise _error(node, f"cannot find the source of block class {name}")
        if base is not None:
            fdef = next(n for n in cdef.body if isinstance(n, ast.FunctionDef)
                        and n.name == "forward")
            start = _first_line(fdef)
            doc = " ".join((inspect.getdoc(cls) or "").split("\n\n")[0].split())
            text = "\n".join([f"class {name}(nn.{base.__name__}):",
                              f'    """{doc}"""' if doc else "", "",
                              *lines[start - 1:fdef.end_lineno]]) + "\n"
            used = _names(fdef)
        else:  # from the `class` line: decorators (`@register`) stay behind
            drop = _engine_only(cdef, tree)
            skip = {n for d in drop for n in range(_first_line(d), d.end_lineno + 1)}
            kept = [line for n, line in enumerate(lines[cdef.lineno - 1:cdef.end_lineno],
                                                  cdef.lineno) if n not in skip]
            kept = [line for i, line in enumerate(kept)  # no doubled blank lines left behind
                    if line.strip() or (i + 1 < len(kept) and kept[i + 1].strip())]
            text = "\n".join(kept) + "\n"
            used = _names(cdef, skip=[*cdef.decorator_list, *drop])
        # base classes are needed when the class statement runs: they go before it
        bases = {n.id for b in cdef.bases for n in ast.walk(b) if isinstance(n, ast.Name)}
        self._dependencies(bases & used - {name}, tree, lines, module, node)
        self.helpers[name] = ""  # reserve its place: other dependencies go after it, in use order
        self._dependencies(used - bases - {name}, tree, lines, module, node)
        self.helpers[name] = text

    def _dependencies(self, used: set[str], tree: ast.Module, lines: list[str], module,
                      node: Node) -> None:
        """Module-level helpers a copied class uses (`_pair`), and its imports."""
        for name in sorted(used):
            if name not in vars(module):
                continue  # a local name or a builtin
            if name in _STANDARD_IMPORTS and vars(module)[name] is _standard(name):
                continue  # imported the usual way at the top of the file
            defn = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                         and n.name == name), None)
            if isinstance(defn, ast.ClassDef):
                self._helper(vars(module)[name], node)
            elif isinstance(defn, ast.FunctionDef):
                text = "\n".join(lines[_first_line(defn) - 1:defn.end_lineno]) + "\n"
                if name in self.helpers:  # ("" while it is being added)
                    if self.helpers[name] not in ("", text):
                        raise _error(node, f"two different helper functions are named {name}",
                                     "rename one of them in blocks/")
                    continue
                self.helpers[name] = ""
                self._dependencies(_names(defn) - {name}, tree, lines, module, node)
                self.helpers[name] = text
            else:
                self.imports.add(_import_line(tree, name, node))

def _standard(name: str) -> Any:
    import collections

    import torch.nn.functional as F
    import torchvision
    return {"torch": torch, "nn": nn, "F": F, "Tensor": torch.Tensor,
            "OrderedDict": collections.OrderedDict, "math": math,
            "torchvision": torchvision}[name]


def _first_line(defn: ast.AST) -> int:
    return min([defn.lineno, *(d.lineno for d in getattr(defn, "decorator_list", []))])


def _engine_only(cdef: ast.ClassDef, tree: ast.Module) -> list[ast.FunctionDef]:
    """Methods of a block class that only the engine calls (`label` for diagrams): not
    nn.Module's, not dunders, and not used by any method of the module (a base class's
    helpers are used by its subclasses)."""
    methods = [n for n in cdef.body if isinstance(n, ast.FunctionDef)]
    everywhere = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    out = []
    for m in methods:
        if m.name.startswith("__") or hasattr(nn.Module, m.name) or m.name == "forward":
            continue
        used = any(isinstance(n, (ast.Attribute, ast.Name)) and
                   getattr(n, "attr", getattr(n, "id", None)) == m.name
                   for other in everywhere if other is not m for n in ast.walk(other))
        if not used:
            out.append(m)
    return out


def _names(tree: ast.AST, skip: list | None = None) -> set[str]:
    skipped = {id(n) for s in (skip or []) for n in ast.walk(s)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in skipped}


def _import_line(tree: ast.Module, name: str, node: Node) -> str:
    """The block module's own import of `name`, if it is from torch, torchvision or stdlib."""
    for stmt in tree.body:
        if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        for alias in stmt.names:
            if (alias.asname or alias.name.split(".")[0]) != name:
                continue
            origin = stmt.module if isinstance(stmt, ast.ImportFrom) else alias.name
            root = (origin or "").split(".")[0]
            relative = isinstance(stmt, ast.ImportFrom) and stmt.level
            if not relative and (root in ("torch", "torchvision")
                                 or (root in sys.stdlib_module_names and root != "__future__")):
                if isinstance(stmt, ast.ImportFrom):
                    return ast.unparse(ast.ImportFrom(module=stmt.module, names=[alias], level=0))
                return ast.unparse(ast.Import(names=[alias]))
    raise _error(node, f"block '{node.op}' uses '{name}', which is not from torch, torchvision "
                       "or the standard library", "a generated file may import only those")
