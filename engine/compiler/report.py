"""Printing diagnostics the way compilers do: location, message, the source line, a caret, a hint."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from engine.compiler.ir import Diagnostic

_SEVERITY_ORDER = {"error": 0, "warning": 1}


def format_diagnostic(d: Diagnostic, color: bool = False) -> str:
    red, bold, dim, reset = ("\033[31m", "\033[1m", "\033[2m", "\033[0m") if color else ("",) * 4
    where = f"{d.loc}: " if d.loc else ""
    node = f" in node '{d.path}'" if d.path else ""
    lines = [f"{bold}{where}{red}{d.severity}{reset}{bold}{node}: {d.message}{reset}"]
    source = _source_line(d.loc.file, d.loc.line) if d.loc and d.loc.line else None
    if source is not None:
        gutter = f"{d.loc.line:>5} | "
        lines.append(f"{dim}{gutter}{reset}{source}")
        lines.append(" " * (len(gutter) + max(d.loc.col - 1, 0)) + f"{red}^{reset}")
    if d.hint:
        lines.append(f"      hint: {d.hint}")
    return "\n".join(lines)


def format_all(diagnostics: list[Diagnostic], color: bool = False) -> str:
    ordered = sorted(diagnostics, key=lambda d: (_SEVERITY_ORDER.get(d.severity, 2),
                                                 d.loc.file if d.loc else "",
                                                 d.loc.line if d.loc else 0))
    body = "\n\n".join(format_diagnostic(d, color) for d in ordered)
    count = len(diagnostics)
    return f"{body}\n\n{count} error{'s' if count != 1 else ''}"


@lru_cache(maxsize=64)
def _lines(file: str, stamp: tuple[int, int]) -> tuple[str, ...] | None:
    """The file's lines, cached by (name, mtime and size): a long-lived process (`engine view
    --watch`) quotes a file as it is now, not as it was when first read."""
    try:
        return tuple(Path(file).read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError):
        return None


def _stamp(file: str) -> tuple[int, int]:
    try:
        stat = Path(file).stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


def _source_line(file: str, line: int) -> str | None:
    lines = _lines(file, _stamp(file))
    if lines is None or not 0 < line <= len(lines):
        return None
    return lines[line - 1]
