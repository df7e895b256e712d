"""The engine's layering rule, read from the source: who imports whom, at which line.

    engine.blocks  <  engine.compiler  <  engine.views  <  engine.train  <  engine (cli, API)

(`engine.blocks` is the repository's blocks/ folder, mapped into the package by pyproject.toml.)

A module may import its own layer and the layers below it, never one above. Inside the train
layer the same rule orders its parts (the evaluation side never imports a procedure, and no
procedure imports the runner). A private name (`_x`) may be imported only inside its own
package. Every import counts, the ones inside functions included. `tests/test_layering.py`
enforces this; `scripts/import_counts.py` prints the counts between packages.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LAYERS = ("engine.blocks", "engine.compiler", "engine.views", "engine.train", "engine")

# inside engine.train, lowest first: a part may import its own rank and below
TRAIN_PARTS = (
    ("registry", "checkpoint", "distributed", "progress", "plot", "loader", "optim", "losses",
     "data", "weights", "arguments", "tracking", "runs"),
    ("evaluation",),
    ("procedures",),
    ("recipe", "runner", "judges"),
)


@dataclass(frozen=True)
class Import:
    file: str  # relative to the repository root
    line: int
    importer: str  # dotted module name of the importing file
    module: str  # dotted name of the imported module
    names: tuple[str, ...]  # what a `from` import takes ((), for `import x`)


# pyproject.toml maps these top-level folders into the package
MAPPED = {"engine.blocks": "blocks", "engine.specs": "specs", "engine.recipes": "recipes"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ours(".".join(parts))


def ours(module: str) -> str:
    """A dotted name as the package knows it: the folder `blocks` is `engine.blocks` (older
    revisions imported it as `blocks`)."""
    folder = {v: k for k, v in MAPPED.items()}
    top, _, rest = module.partition(".")
    return ".".join(filter(None, [folder[top], rest])) if top in folder else module


def source_path(module: str, root: Path) -> Path:
    """Where a dotted module name lives in the repository (without .py or /__init__.py)."""
    for name, folder in MAPPED.items():
        if module == name or module.startswith(name + "."):
            return root / folder / module[len(name) + 1:].replace(".", "/")
    return root / module.replace(".", "/")


def is_package(module: str, root: Path) -> bool:
    return (source_path(module, root) / "__init__.py").is_file()


def package_of(module: str, root: Path) -> str:
    """The package a module belongs to (a package's `__init__` belongs to the package itself)."""
    return module if is_package(module, root) else module.rpartition(".")[0]


def source_files(root: Path) -> Iterator[Path]:
    for top in ("blocks", "engine"):
        yield from sorted((root / top).rglob("*.py"))


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    """Every import of `blocks` or `engine` in one file, at module level or inside a function."""
    importer = module_name(path, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = str(path.relative_to(root))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _ours(alias.name):
                    yield Import(rel, node.lineno, importer, ours(alias.name), ())
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and _ours(node.module):
            yield from _from_import(node, rel, importer, root)


def _from_import(node: ast.ImportFrom, rel: str, importer: str, root: Path) -> Iterator[Import]:
    # `from engine.train import data` imports the module engine.train.data, not a name of the package
    plain, module = [], ours(node.module)
    for alias in node.names:
        sub = f"{module}.{alias.name}"
        path = source_path(sub, root)
        if path.is_dir() or path.with_suffix(".py").is_file():
            yield Import(rel, node.lineno, importer, sub, ())
        else:
            plain.append(alias.name)
    if plain:
        yield Import(rel, node.lineno, importer, module, tuple(plain))


def _ours(module: str) -> bool:
    return module.split(".")[0] in ("blocks", "engine")


def layer(module: str) -> int:
    """The index in LAYERS of the longest layer name that prefixes `module`."""
    best = -1
    for i, name in enumerate(LAYERS):
        if module == name or module.startswith(name + "."):
            best = i if best < 0 or len(name) > len(LAYERS[best]) else best
    return best


def train_rank(module: str) -> int | None:
    parts = module.split(".")
    if parts[:2] != ["engine", "train"] or len(parts) < 3:
        return None
    return next((i for i, names in enumerate(TRAIN_PARTS) if parts[2] in names), None)


def violations(root: Path) -> list[str]:
    """Every import that breaks the layering rule, as 'file:line: what is wrong'."""
    out = []
    for path in source_files(root):
        for imp in imports_of(path, root):
            out.extend(f"{imp.file}:{imp.line}: {msg}" for msg in _check(imp, root))
    return out


def _check(imp: Import, root: Path) -> Iterator[str]:
    mine, theirs = layer(imp.importer), layer(imp.module)
    if theirs > mine:
        yield (f"{LAYERS[mine]} imports {imp.module}, of the higher layer {LAYERS[theirs]} "
               f"(order: {' < '.join(LAYERS)})")
    a, b = train_rank(imp.importer), train_rank(imp.module)
    if a is not None and b is not None and b > a:
        yield (f"{imp.importer} imports {imp.module}: inside engine.train, "
               f"{'/'.join(TRAIN_PARTS[a])} sit below {'/'.join(TRAIN_PARTS[b])}")
    private = [n for n in imp.names if n.startswith("_") and not n.startswith("__")]
    if private and package_of(imp.importer, root) != package_of(imp.module, root):
        yield (f"{imp.importer} imports the private name(s) {', '.join(private)} of {imp.module} "
               f"from another package: make them public there, or move the code that uses them")


def package_edges(root: Path) -> dict[tuple[str, str], int]:
    """How many import statements go from one package to another (within one package: not counted)."""
    counts: dict[tuple[str, str], int] = {}
    for path in source_files(root):
        for imp in imports_of(path, root):
            a, b = package_of(imp.importer, root), package_of(imp.module, root)
            if a != b:
                counts[a, b] = counts.get((a, b), 0) + 1
    return counts


def private_crossings(root: Path) -> list[Import]:
    """Imports of a private name from another file (any package)."""
    return [imp for path in source_files(root) for imp in imports_of(path, root)
            if any(n.startswith("_") and not n.startswith("__") for n in imp.names)
            and imp.module != imp.importer]
