"""Import counts between the engine's packages, now or at any git revision.

    python scripts/import_counts.py              # the working tree
    python scripts/import_counts.py --rev 75c87e0  # the flat engine/ before the packages

Prints, for each pair of packages, how many import statements go from one to the other
(function-level ones included), the imports that go up a layer (tests/layering.py), and how
many private names (`_x`) are imported from another file.
For a revision with the flat layout, each old module is counted in the package it moved to,
so the two tables compare like with like.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests import layering  # noqa: E402

# the flat engine/ (up to 75c87e0): module -> the package it moved to
FLAT = {
    **dict.fromkeys("load merge expr resolve repeat schema validate shapes build init report walk dump "
                    "statedict ir pipeline".split(), "engine.compiler"),
    **dict.fromkeys("summary render export diff codegen".split(), "engine.views"),
    **dict.fromkeys("recipe runner loader checkpoint distributed progress plot optim registry losses "
                    "gan_losses data procedures".split(), "engine.train"),
    **dict.fromkeys("metrics sr_metrics bleu color digit_fd sampling infer decoding translator "
                    "diffusion".split(), "engine.train.evaluation"),
}


def package(module: str, root: Path) -> str:
    """The package a module belongs to, the flat layout mapped to today's."""
    parts = module.split(".")
    flat = not (root / "engine/compiler").is_dir()
    if flat and parts[0] == "engine" and len(parts) > 1 and parts[1] in FLAT:
        base = FLAT[parts[1]]
        sub = parts[2:-1] if not layering.is_package(module, root) else parts[2:]
        return ".".join([base, parts[1], *sub]) if parts[1] in ("data", "procedures", "diff", "codegen") \
            else base
    return layering.package_of(module, root)


def relocate(module: str, root: Path) -> str:
    """A module's name in today's layout (engine.digit_fd -> engine.train.evaluation.digit_fd)."""
    parts = module.split(".")
    if (root / "engine/compiler").is_dir() or parts[0] != "engine" or len(parts) < 2 \
            or parts[1] not in FLAT:
        return module
    moved = {"pipeline": "engine.compiler", "losses": "engine.train.losses",
             "gan_losses": "engine.train.losses.gan"}.get(parts[1], f"{FLAT[parts[1]]}.{parts[1]}")
    return ".".join([moved, *parts[2:]])


def upward_imports(root: Path) -> list[str]:
    """Imports that go up a layer, or up the ranks inside engine.train (module names relocated)."""
    out = []
    for path in layering.source_files(root):
        for imp in layering.imports_of(path, root):
            a, b = relocate(imp.importer, root), relocate(imp.module, root)
            ra, rb = layering.train_rank(a), layering.train_rank(b)
            if layering.layer(b) > layering.layer(a) or (ra is not None and rb is not None and rb > ra):
                out.append(f"{imp.file}:{imp.line}: {a} imports {b}")
    return out


def counts(root: Path) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for path in layering.source_files(root):
        for imp in layering.imports_of(path, root):
            a, b = package(imp.importer, root), package(imp.module, root)
            if a != b:
                out[a, b] = out.get((a, b), 0) + 1
    return out


def top(pkg: str) -> str:
    """The layer a package is in (engine.train.procedures -> engine.train)."""
    return layering.LAYERS[layering.layer(pkg)]


def report(root: Path, title: str) -> None:
    edges = counts(root)
    by_layer: dict[tuple[str, str], int] = {}
    for (a, b), n in edges.items():
        key = (top(a), top(b))
        if key[0] != key[1]:
            by_layer[key] = by_layer.get(key, 0) + n
    print(f"== {title}")
    print("imports between layers (importer -> imported: statements):")
    for (a, b), n in sorted(by_layer.items()):
        up = layering.layer(b) > layering.layer(a)
        print(f"  {a:16} -> {b:16} {n:4}{'   UPWARD' if up else ''}")
    print("imports between packages:")
    for (a, b), n in sorted(edges.items()):
        print(f"  {a:32} -> {b:32} {n:4}")
    private = layering.private_crossings(root)
    names = sum(len([n for n in i.names if n.startswith("_") and not n.startswith("__")]) for i in private)
    crossing = [i for i in private if package(i.importer, root) != package(i.module, root)]
    print(f"private names imported from another file: {names} (in {len(private)} statements; "
          f"{len(crossing)} of them from another package)")
    found = upward_imports(root)
    print(f"imports up a layer or up the ranks of engine.train: {len(found)}")
    for line in found:
        print(f"  {line}")
    if (root / "engine/compiler").is_dir():
        print(f"violations of tests/layering.py: {len(layering.violations(root))}")


def tree_at(rev: str, into: Path) -> Path:
    data = subprocess.run(["git", "archive", rev, "engine", "blocks"], cwd=REPO, check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="a git revision instead of the working tree")
    args = parser.parse_args()
    if args.rev:
        with tempfile.TemporaryDirectory() as tmp:
            report(tree_at(args.rev, Path(tmp)), f"revision {args.rev}")
    else:
        report(REPO, "working tree")


if __name__ == "__main__":
    main()
