"""Copied block sources: a block's class (or its forward over a torch base), with the
module-level helpers and imports it needs, collected for the top of the generated file."""

from __future__ import annotations

import ast
import inspect
import math
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NamedTuple

import torch
from torch import nn

from engine.compiler.ir import Node
from engine.views.codegen.ir import codegen_error
from engine.views.codegen.literals import STANDARD_IMPORTS


@dataclass
class Helpers:
    """What a generated file holds besides its generated classes."""

    sources: dict[str, str] = field(default_factory=dict)  # name -> source, in file order
    imports: set[str] = field(default_factory=set)  # import lines beyond the standard ones
    classes: dict[str, type] = field(default_factory=dict)  # copied block classes by name


class _Module(NamedTuple):
    """A block's module, as objects and as source."""

    module: ModuleType
    tree: ast.Module
    lines: list[str]


def copy_block(helpers: Helpers, cls: type, node: Node, base: type | None = None) -> None:
    """Add a block's class (or, over a torch base, its forward only) to the file, after what it
    needs; raises if another class of the same name was copied already."""
    name = cls.__name__
    if helpers.classes.get(name, cls) is not cls:
        raise codegen_error(node, f"two different block classes are named {name}",
                            "rename one of them in blocks/")
    if name in helpers.sources:
        return
    helpers.classes[name] = cls
    src = _read(sys.modules[cls.__module__])
    cdef = next((n for n in src.tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    if cdef is None:
        raise codegen_error(node, f"cannot find the source of block class {name}")
    text, used = _forward_only(cls, cdef, src, base) if base is not None else _whole(cdef, src)
    # base classes are needed when the class statement runs: they go before it
    bases = {n.id for b in cdef.bases for n in ast.walk(b) if isinstance(n, ast.Name)}
    _copy_dependencies(helpers, bases & used - {name}, src, node)
    helpers.sources[name] = ""  # reserve its place: other dependencies go after it, in use order
    _copy_dependencies(helpers, used - bases - {name}, src, node)
    helpers.sources[name] = text


def _read(module: ModuleType) -> _Module:
    source = inspect.getsource(module)
    return _Module(module, ast.parse(source), source.splitlines())


def _forward_only(cls: type, cdef: ast.ClassDef, src: _Module, base: type) -> tuple[str, set[str]]:
    """The torch layer with the block's forward: its text and the names the forward uses."""
    fdef = next(n for n in cdef.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    doc = " ".join((inspect.getdoc(cls) or "").split("\n\n")[0].split())
    text = "\n".join([f"class {cls.__name__}(nn.{base.__name__}):",
                      f'    """{doc}"""' if doc else "", "",
                      *src.lines[_first_line(fdef) - 1:fdef.end_lineno]]) + "\n"
    return text, _names(fdef)


def _whole(cdef: ast.ClassDef, src: _Module) -> tuple[str, set[str]]:
    """The class from its `class` line (decorators such as `@register` stay behind), without
    its engine-only methods: its text and the names it uses."""
    drop = _engine_only(cdef, src.tree)
    skip = {n for d in drop for n in range(_first_line(d), d.end_lineno + 1)}
    kept = [line for n, line in enumerate(src.lines[cdef.lineno - 1:cdef.end_lineno], cdef.lineno)
            if n not in skip]
    kept = [line for i, line in enumerate(kept)  # no doubled blank lines left behind
            if line.strip() or (i + 1 < len(kept) and kept[i + 1].strip())]
    return "\n".join(kept) + "\n", _names(cdef, skip=[*cdef.decorator_list, *drop])


def _copy_dependencies(helpers: Helpers, used: set[str], src: _Module, node: Node) -> None:
    """Module-level helpers a copied class uses (`_pair`), and its imports."""
    for name in sorted(used):
        if name not in vars(src.module):
            continue  # a local name or a builtin
        if name in STANDARD_IMPORTS and vars(src.module)[name] is _standard(name):
            continue  # imported the usual way at the top of the file
        defn = next((n for n in src.tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                     and n.name == name), None)
        if isinstance(defn, ast.ClassDef):
            copy_block(helpers, vars(src.module)[name], node)
        elif isinstance(defn, ast.FunctionDef):
            _copy_function(helpers, defn, src, node)
        else:
            helpers.imports.add(_import_line(src.tree, name, node))


def _copy_function(helpers: Helpers, defn: ast.FunctionDef, src: _Module, node: Node) -> None:
    name = defn.name
    text = "\n".join(src.lines[_first_line(defn) - 1:defn.end_lineno]) + "\n"
    if name in helpers.sources:  # ("" while it is being added)
        if helpers.sources[name] not in ("", text):
            raise codegen_error(node, f"two different helper functions are named {name}",
                                "rename one of them in blocks/")
        return
    helpers.sources[name] = ""
    _copy_dependencies(helpers, _names(defn) - {name}, src, node)
    helpers.sources[name] = text


def _standard(name: str) -> Any:
    import collections

    import torch.nn.functional as F
    import torchvision
    return {"torch": torch, "nn": nn, "F": F, "Tensor": torch.Tensor,
            "OrderedDict": collections.OrderedDict, "math": math,
            "torchvision": torchvision}[name]


def _first_line(defn: ast.AST) -> int:
    return min([defn.lineno, *(d.lineno for d in getattr(defn, "decorator_list", []))])


# torch conventions, not engine internals: `reset_parameters` re-initialises a module built on the
# meta device (PyTorch's own layers have one), so a copied block keeps it even where no method of
# its file calls it; `label` (the diagram's box text) and `shape_rule` (static shape inference,
# def'd or assigned `shape_rule = staticmethod(...)`) are the engine's and always go. Decided by
# name, not by what else the block's file holds, so moving a block never changes the output.
KEEP_METHODS = ("forward", "reset_parameters")
ENGINE_METHODS = ("label", "shape_rule")


def _engine_only(cdef: ast.ClassDef, tree: ast.Module) -> list[ast.stmt]:
    """Methods of a block class that only the engine calls (`label` for diagrams): not
    nn.Module's, not dunders, and not used by any method of the module (a base class's
    helpers are used by its subclasses)."""
    methods = [n for n in cdef.body if isinstance(n, ast.FunctionDef)]
    everywhere = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    out: list[ast.stmt] = [n for n in cdef.body if isinstance(n, ast.Assign)
                           and any(isinstance(t, ast.Name) and t.id in ENGINE_METHODS
                                   for t in n.targets)]
    for m in methods:
        if m.name in ENGINE_METHODS:
            out.append(m)
            continue
        if m.name.startswith("__") or hasattr(nn.Module, m.name) or m.name in KEEP_METHODS:
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
            if (alias.asname or alias.name.split(".")[0]) == name and _allowed(stmt, alias):
                if isinstance(stmt, ast.ImportFrom):
                    return ast.unparse(ast.ImportFrom(module=stmt.module, names=[alias], level=0))
                return ast.unparse(ast.Import(names=[alias]))
    raise codegen_error(node, f"block '{node.op}' uses '{name}', which is not from torch, "
                              "torchvision or the standard library",
                        "a generated file may import only those")


def _allowed(stmt: ast.Import | ast.ImportFrom, alias: ast.alias) -> bool:
    """An absolute import from torch, torchvision or the standard library."""
    origin = stmt.module if isinstance(stmt, ast.ImportFrom) else alias.name
    root = (origin or "").split(".")[0]
    if isinstance(stmt, ast.ImportFrom) and stmt.level:
        return False
    return root in ("torch", "torchvision") or (root in sys.stdlib_module_names
                                                 and root != "__future__")
