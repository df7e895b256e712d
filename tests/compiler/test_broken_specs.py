"""The error-reporting corpus: every spec in tests/broken/ is broken in one declared way.

Each corpus file opens with a comment header that says what the engine must report:

    # expect-file: tests/broken/lib/x.inc.yaml   (optional: the file the error is in; default: itself)
    # expect-line: 7                             the line of that file the error points at
    # expect-node: layer1.0.conv2                (optional) the node path, printed as "in node '...'"
    # expect-message: unknown op 'convv'         a substring of the error message
    # expect-hint: did you mean 'conv'           (optional) a substring of that error's hint
    # expect-count: 2                            (optional) the exact number of errors reported

The checks are made on one diagnostic: the one at the expected file and line must carry the
node path, the message and the hint. Every file must also exit with status 1 (a spec error, not
an internal error) and never print a traceback.

Where the engine does not (yet) report the problem the way the header says, the file is listed
in XFAIL with what goes wrong; the expectation itself states the correct behaviour and is not
weakened to match the engine. Remove an entry once the engine is fixed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "tests" / "broken"
FILES = sorted(BROKEN.glob("*.yaml"))

# file name -> what the engine gets wrong today (the expectation in the file is the correct one)
XFAIL: dict[str, str] = {}

# a few files are also run as a real subprocess (`validate` and `build`) to prove that nothing
# reaches the terminal as a traceback, whichever stage finds the error
SUBPROCESS = {
    "yaml_bad_indent.yaml": "validate",           # load stage
    "extends_outside.yaml": "validate",           # merge stage
    "expr_forbidden_call.yaml": "build",          # resolve stage
    "unknown_op.yaml": "build",                   # validate stage
    "shape_mismatch_add.yaml": "build",           # shape stage
    "block_body_error.yaml": "build",
    "several_errors.yaml": "validate",
}

HEADER = re.compile(r"^#\s*expect-([a-z]+):\s*(.*?)\s*$")
DIAG = re.compile(r"^(?P<file>\S.*?)(?::(?P<line>\d+):(?P<col>\d+))?: error"
                  r"(?: in node '(?P<node>[^']*)')?: (?P<message>.*)$")
COUNT = re.compile(r"^(\d+) errors?$", re.M)


def expectations(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        m = HEADER.match(line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _param(path: Path, extra=()):
    marks = [pytest.mark.xfail(reason=XFAIL[path.name], strict=False)] if path.name in XFAIL else []
    return pytest.param(path, *extra, id=path.name, marks=marks)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def diagnostics(output: str) -> list[dict]:
    """Split CLI output into diagnostics: file, line, node, message, hint."""
    found = []
    for line in output.splitlines():
        m = DIAG.match(line)
        if m:
            found.append({**m.groupdict(), "hint": None})
        elif found and line.strip().startswith("hint:"):
            found[-1]["hint"] = line.strip()[len("hint:"):].strip()
    return found


def _same_file(printed: str, expected: str) -> bool:
    p = Path(printed)
    return (p if p.is_absolute() else ROOT / p).resolve() == (ROOT / expected).resolve()


def check_output(path: Path, rc: int, output: str) -> None:
    exp = expectations(path)
    shown = f"\n--- engine output ---\n{output}"
    assert "Traceback" not in output, f"a traceback reached the terminal{shown}"
    assert "internal error" not in output, f"the engine failed internally{shown}"
    assert rc == 1, f"exit status {rc}, expected 1{shown}"

    file = exp.get("file", _rel(path))
    line = int(exp["line"])
    if not Path(file).is_absolute() and file == _rel(path):
        assert f"{file}:{line}:" in output, f"no diagnostic at {file}:{line}{shown}"
    here = [d for d in diagnostics(output)
            if d["line"] and int(d["line"]) == line and _same_file(d["file"], file)]
    assert here, f"no diagnostic at {file}:{line}{shown}"

    # one of the diagnostics at that line must match all the declared expectations
    def matches(d):
        return (("node" not in exp or d["node"] == exp["node"])
                and exp["message"] in d["message"]
                and ("hint" not in exp or (d["hint"] or "").find(exp["hint"]) >= 0))

    if not any(matches(d) for d in here):
        d = here[0]
        assert "node" not in exp or d["node"] == exp["node"], \
            f"node path {d['node']!r}, expected {exp['node']!r}{shown}"
        assert exp["message"] in d["message"], \
            f"message lacks {exp['message']!r}{shown}"
        assert "hint" not in exp or exp["hint"] in (d["hint"] or ""), \
            f"hint {d['hint']!r} lacks {exp['hint']!r}{shown}"
        pytest.fail(f"no single diagnostic at line {line} matches all expectations{shown}")

    if "count" in exp:
        counts = COUNT.findall(output)
        assert counts, f"no 'N errors' line{shown}"
        assert int(counts[-1]) == int(exp["count"]), \
            f"{counts[-1]} error(s) reported, expected {exp['count']}{shown}"
        assert len(diagnostics(output)) == int(exp["count"]), \
            f"{len(diagnostics(output))} diagnostics printed, expected {exp['count']}{shown}"


# ---- the corpus itself ----------------------------------------------------------------------
def test_corpus_is_complete():
    assert len(FILES) >= 36, f"only {len(FILES)} broken specs"
    assert not any(p.name.endswith(".inc.yaml") for p in FILES)
    assert set(XFAIL) <= {p.name for p in FILES}, "XFAIL names a file that is not in the corpus"
    assert set(SUBPROCESS) <= {p.name for p in FILES}


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in FILES])
def test_header_is_well_formed(path):
    exp = expectations(path)
    assert {"line", "message"} <= set(exp), f"{path.name}: needs expect-line and expect-message"
    assert set(exp) <= {"file", "line", "node", "message", "hint", "count"}, sorted(exp)
    target = ROOT / exp.get("file", _rel(path))
    lines = target.read_text(encoding="utf-8").splitlines()
    line = int(exp["line"])
    assert 0 < line <= len(lines), f"{target.name} has no line {line}"
    assert not lines[line - 1].lstrip().startswith("#"), \
        f"expect-line {line} of {target.name} is a comment: the header is miscounted"


# ---- the engine's reports -------------------------------------------------------------------
@pytest.mark.parametrize("path", [_param(p) for p in FILES])
def test_validate_reports(path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("ENGINE_DEBUG", raising=False)
    rc = main(["validate", _rel(path)])
    captured = capsys.readouterr()
    check_output(path, rc, captured.out + captured.err)


@pytest.mark.parametrize("path,command", [_param(BROKEN / name, (cmd,))
                                          for name, cmd in SUBPROCESS.items()])
def test_cli_subprocess(path, command):
    env = {k: v for k, v in __import__("os").environ.items() if k != "ENGINE_DEBUG"}
    proc = subprocess.run([sys.executable, "-m", "engine.cli", command, _rel(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    check_output(path, proc.returncode, proc.stdout + proc.stderr)


def test_validate_several_files_reports_all(capsys, monkeypatch):
    """`engine validate a b` reports the errors of both files, and says which files are bad."""
    monkeypatch.chdir(ROOT)
    a, b = BROKEN / "unknown_op.yaml", BROKEN / "unknown_arg.yaml"
    rc = main(["validate", _rel(a), _rel(b)])
    out = "".join(capsys.readouterr())
    assert rc == 1, out
    for path in (a, b):
        assert f"bad {_rel(path)}" in out, out
        assert f"{_rel(path)}:{expectations(path)['line']}:" in out, out
    assert re.search(r"^2 errors$", out, re.M), out
