"""The error-reporting corpus of recipes: every file in tests/broken_recipes/ is broken in one
declared way, and `engine validate FILE` must say so at the right place.

Each file opens with a header, as tests/broken/ does for specs:

    # expect-file: tests/broken_recipes/lib/x.yaml   (optional: the file the error is in)
    # expect-line: 9                                 the line of that file the error points at
    # expect-message: unknown optimizer 'adamm'      a substring of the error message
    # expect-hint: did you mean 'adam'               a substring of that error's hint

`validate` runs in-process (engine.cli.main); it must exit 1 with the error at the file and line,
its message and hint, and no internal error or traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "broken_recipes"
FILES = sorted(CORPUS.glob("*.yaml"))
HEADER = re.compile(r"^#\s*expect-([a-z]+):\s*(.*?)\s*$")
DIAG = re.compile(r"^(?P<file>\S.*?):(?P<line>\d+):(?P<col>\d+): error(?: in node '[^']*')?: "
                  r"(?P<message>.*)$")


def expectations(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = HEADER.match(line)
        if not m:
            break
        out[m.group(1)] = m.group(2)
    return out


def diagnostics(output: str) -> list[dict]:
    found: list[dict] = []
    for line in output.splitlines():
        m = DIAG.match(line)
        if m:
            found.append({**m.groupdict(), "hint": ""})
        elif found and line.strip().startswith("hint:"):
            found[-1]["hint"] = line.strip()[len("hint:"):].strip()
    return found


def test_corpus_is_complete():
    assert len(FILES) >= 25, f"only {len(FILES)} broken recipes"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_header_is_well_formed(path):
    exp = expectations(path)
    assert {"line", "message", "hint"} <= set(exp) <= {"file", "line", "message", "hint"}, sorted(exp)
    target = ROOT / exp.get("file", str(path.relative_to(ROOT)))
    lines = target.read_text(encoding="utf-8").splitlines()
    assert 0 < int(exp["line"]) <= len(lines)
    assert not lines[int(exp["line"]) - 1].lstrip().startswith("#"), "the header is miscounted"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_validate_reports(path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("ENGINE_DEBUG", raising=False)
    rel = str(path.relative_to(ROOT))
    rc = main(["validate", rel])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    shown = f"\n--- engine output ---\n{output}"
    assert "Traceback" not in output and "internal error" not in output, shown
    assert rc == 1, f"exit status {rc}{shown}"
    exp = expectations(path)
    file, line = exp.get("file", rel), int(exp["line"])
    assert f"{file}:{line}:" in output, f"no diagnostic at {file}:{line}{shown}"
    here = [d for d in diagnostics(output) if d["file"] == file and int(d["line"]) == line]
    assert any(exp["message"] in d["message"] and exp["hint"] in d["hint"] for d in here), \
        f"no diagnostic at {file}:{line} with message {exp['message']!r} and hint {exp['hint']!r}{shown}"
