"""Which spec files the viewer may show: the bundled specs, the folders of the specs it was given
and the `--root` folders; each file named by an id `folder-label/relative/path.yaml`.

The id is the only way a request names a file: it is looked up in the folders the viewer was
given, and a file outside them (`..`, an absolute path, a symbolic link leading out) is refused
rather than read, so the viewer serves nothing else on the machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.compiler.merge import SPECS_DIR, find_spec, header_summary

BUNDLED = "bundled"
_FAMILY = re.compile(r"^[a-z]+(?:(?<=v)\d+)?")  # resnet50 -> resnet, deeplabv3_resnet50 -> deeplabv3


@dataclass(frozen=True)
class Entry:
    """A spec file the viewer may show."""

    id: str
    path: Path
    family: str
    summary: str  # the header comment up to its first full stop


class Catalog:
    """The spec folders the viewer was given, by label, and the files under them."""

    def __init__(self, roots: list[Path]):
        self.roots: dict[str, Path] = {BUNDLED: SPECS_DIR.resolve()}
        for root in roots:
            self.add_root(Path(root))

    def add_root(self, root: Path) -> str:
        root = root.resolve()
        for label, known in self.roots.items():
            if known == root:
                return label
        label, n = _label(root.name), 2
        while label in self.roots:
            label, n = f"{_label(root.name)}-{n}", n + 1
        self.roots[label] = root
        return label

    def add_spec(self, spec: str) -> str:
        """The id of a spec given on the command line (a file or a bundled name); its folder
        becomes one of the viewer's roots."""
        path = find_spec(spec).resolve()
        return self.id_of(path) or f"{self.add_root(path.parent)}/{path.name}"

    def id_of(self, path: Path) -> str | None:
        path = path.resolve()
        for label, root in self.roots.items():
            if path.is_relative_to(root):
                return f"{label}/{path.relative_to(root).as_posix()}"
        return None

    def path(self, spec_id: str) -> Path | None:
        """The file an id names, or None where it names nothing inside the viewer's folders."""
        label, _, rel = spec_id.partition("/")
        root = self.roots.get(label)
        if root is None or not rel or "\\" in rel or "\0" in rel or rel.startswith("/") \
                or any(part in ("", ".", "..") for part in rel.split("/")):
            return None
        path = (root / rel).resolve()  # symbolic links followed: the target must be inside too
        if not path.is_relative_to(root) or path.suffix not in (".yaml", ".yml") or not path.is_file():
            return None
        return path

    def entries(self) -> list[Entry]:
        """Every spec file in the folders (a folder's subfolders too, but not the bundled
        spec folder's block libraries), bundled first."""
        out = []
        for label, root in self.roots.items():
            files = sorted(root.glob("*.yaml")) if label == BUNDLED else \
                sorted(p for p in root.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))
            for path in files:
                spec_id = self.id_of(path)
                if spec_id is not None and self.path(spec_id) is not None:
                    out.append(Entry(spec_id, path, family(path.stem), header_summary(path)))
        return out


def family(name: str) -> str:
    match = _FAMILY.match(name.lower())
    return match.group(0) if match else name


def _label(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "root"
