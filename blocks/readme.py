"""`blocks/README.md`'s table of files and their blocks, generated from the registry so that it
cannot fall behind it (`tests/blocks/test_registry.py` fails when it does).

    python -m engine.blocks            rewrite the table in blocks/README.md
    python -m engine.blocks --check    exit 1 if the table is out of date
"""

from __future__ import annotations

from pathlib import Path

import engine.blocks  # noqa: F401  (registers every block)
from engine.blocks.registry import REGISTRY

README = Path(__file__).with_name("README.md")
BEGIN = "<!-- generated from the registry by `python -m engine.blocks`: edit the blocks, not this table -->"
END = "<!-- end of the generated table -->"


def table() -> str:
    """One row per file (one family each), its blocks in source order."""
    files: dict[str, list[str]] = {}
    for info in REGISTRY.entries.values():  # registration order: each file's own order
        files.setdefault(info.cls.__module__.removeprefix("engine.blocks."), []).append(info.name)
    rows = [f"| `{stem}.py` | {', '.join(names)} |" for stem, names in sorted(files.items())]
    return "\n".join(["| file | blocks |", "| --- | --- |", *rows])


def with_table(text: str) -> str:
    """The README text with the table between its markers replaced by the current one."""
    head, found, rest = text.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise ValueError(f"{README} has lost the markers around its generated table")
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    new = with_table(text)
    if "--check" in argv:
        if new != text:
            print(f"{README}'s table is out of date: run `python -m engine.blocks`")
        return int(new != text)
    README.write_text(new, encoding="utf-8")
    return 0
