"""The YAML lines that made a node: the node's own entry (its key line and the lines indented
below it) and the lines of each argument written elsewhere (an `extends:` override, a block's
defaults in a library file), as snippets of whole lines with the node's lines marked."""

from __future__ import annotations

import os
from pathlib import Path

from engine.compiler.ir import Loc, Node

CONTEXT = 2  # lines shown above and below the node's own lines
MAX_LINES = 40  # a node entry longer than this (a whole block body) is cut here


class Sources:
    """The text of the files nodes come from, read once per analysis."""

    def __init__(self) -> None:
        self.files: dict[str, list[str]] = {}

    def lines(self, file: str) -> list[str]:
        if file not in self.files:
            try:
                self.files[file] = Path(file).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                self.files[file] = []
        return self.files[file]

    def snippets(self, node: Node) -> list[dict]:
        """[{file, name, first, marked: [line numbers], lines: [text]}], the node's own entry
        first; line numbers are 1-based as in the CLI's errors."""
        marked: dict[str, set[int]] = {}
        if node.loc and node.loc.line:
            marked.setdefault(node.loc.file, set()).update(self.entry(node.loc))
        for loc in (*node.arg_key_locs.values(), *node.arg_locs.values()):
            if loc.line:
                marked.setdefault(loc.file, set()).add(loc.line)
        return [self.snippet(file, lines) for file, lines in marked.items()
                if self.lines(file)]

    def entry(self, loc: Loc) -> range:
        """The lines of the YAML entry starting at `loc`: its line and those indented deeper."""
        lines = self.lines(loc.file)
        if not 0 < loc.line <= len(lines):
            return range(0)
        base = _indent(lines[loc.line - 1])
        end = loc.line
        while end < len(lines) and end - loc.line < MAX_LINES:
            text = lines[end]
            if text.strip() and _indent(text) <= base:  # the next sibling, or a parent's
                break
            end += 1
        while end > loc.line and not lines[end - 1].strip():
            end -= 1  # trailing blank lines belong to no entry
        return range(loc.line, end + 1)

    def snippet(self, file: str, marked: set[int]) -> dict:
        lines = self.lines(file)
        first = max(1, min(marked) - CONTEXT)
        last = min(len(lines), max(marked) + CONTEXT)
        return {"file": display_name(file), "first": first, "marked": sorted(marked),
                "lines": lines[first - 1:last]}


def display_name(file: str) -> str:
    """A file as the CLI names it: relative to the working directory when below it."""
    try:
        rel = os.path.relpath(file)
    except ValueError:  # another drive
        return file
    return file if rel.startswith("..") else rel


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))
