"""The hostile corpus (tests/hostile/, plus files only a test can make: a FIFO, /dev/zero, an
include diamond, bytes that are not UTF-8): each ends quickly, with a located error, in bounded
memory, never an internal error or a traceback.

A corpus file says what it expects in its first lines:

    # expect: over the limit      (a substring of the error output)
    # command: build              (optional; `validate` by default)

Each file runs in a fresh process that imports the engine first; the CPU time and the growth of
the peak memory are measured from there, so the interpreter's own start is not counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO

CORPUS = sorted((REPO / "tests" / "hostile").glob("*.yaml"))
CPU_SECONDS = 2.0
MEMORY_MB = 300

WORKER = textwrap.dedent('''
    import contextlib, io, json, resource, sys, time
    import engine, engine.cli, engine.compiler  # the engine's imports (torch, blocks) not counted
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    err = io.StringIO()
    start = time.process_time()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = engine.cli.main(sys.argv[1:])
    seconds = time.process_time() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"code": code, "stderr": err.getvalue(), "seconds": seconds, "mb": grown}))
''')


def run(argv: list[str], cwd: Path, limits: dict[str, str] | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_MAX_")}
    env.pop("ENGINE_DEBUG", None)
    env.update(limits or {})
    result = subprocess.run([sys.executable, "-c", WORKER, *argv], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def expectations(path: Path) -> tuple[str, str]:
    expect, command = "", "validate"
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[:5]:
        if line.startswith("# expect:"):
            expect = line.split(":", 1)[1].strip()
        elif line.startswith("# command:"):
            command = line.split(":", 1)[1].strip()
    return expect, command


def check(out: dict, expect: str) -> None:
    assert out["code"] == 1, out
    assert "internal error" not in out["stderr"] and "Traceback" not in out["stderr"], out["stderr"]
    assert expect in out["stderr"], out["stderr"]
    assert out["seconds"] < CPU_SECONDS, out
    assert out["mb"] < MEMORY_MB, out


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_a_hostile_file_ends_fast_with_a_located_error(path):
    expect, command = expectations(path)
    assert expect, f"{path.name} has no '# expect:' line"
    out = run([command, str(path.relative_to(REPO))], REPO)
    check(out, expect)
    assert f"{path.name}:" in out["stderr"]  # located: the file (and line, where there is one)


def test_a_fifo_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    out = run(["validate", str(fifo)], tmp_path)
    check(out, "not a regular file")
    assert "spec.yaml" in out["stderr"]


def test_a_device_is_refused_without_reading_it(tmp_path):
    out = run(["validate", "/dev/zero"], tmp_path)
    check(out, "not a regular file")
    assert "/dev/zero" in out["stderr"]


def test_a_file_over_the_size_limit_is_refused_before_reading_it(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text("name: big\n" + "# padding\n" * 200)
    out = run(["validate", str(spec)], tmp_path, {"ENGINE_MAX_FILE_BYTES": "1000"})
    check(out, "ENGINE_MAX_FILE_BYTES")
    assert "big.yaml" in out["stderr"]


def test_yaml_nested_deeper_than_the_limit_but_within_libyaml_s(tmp_path):
    spec = tmp_path / "deep.yaml"
    spec.write_text("name: deep\ngraph: " + "[" * 500 + "]" * 500 + "\n")
    out = run(["validate", str(spec)], tmp_path)
    check(out, "the nesting depth of the YAML is")
    assert "deep.yaml:2:" in out["stderr"]


def test_an_alias_inside_its_own_anchor(tmp_path):
    spec = tmp_path / "loop.yaml"
    spec.write_text("name: loop\ngraph: &g {a: *g}\n")
    out = run(["validate", str(spec)], tmp_path)
    check(out, "contains it")
    assert "loop.yaml:" in out["stderr"]


def test_a_symlink_loop_in_extends(tmp_path):
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    (tmp_path / "spec.yaml").write_text("name: s\nextends: a.yaml\n")
    out = run(["validate", "spec.yaml"], tmp_path)
    check(out, "a.yaml")
    assert "spec.yaml:2:" in out["stderr"]


def test_the_files_limit_counts_each_file_once(tmp_path):
    (tmp_path / "spec.yaml").write_text("name: s\ninclude: [l1.yaml, l1.yaml]\n")
    for i in range(1, 6):
        nxt = f"include: [l{i + 1}.yaml, l{i + 1}.yaml]\n" if i < 5 else ""
        (tmp_path / f"l{i}.yaml").write_text(nxt + "blocks: {}\n")
    out = run(["validate", "spec.yaml"], tmp_path, {"ENGINE_MAX_FILES": "4"})
    check(out, "ENGINE_MAX_FILES")
    out = run(["validate", "spec.yaml"], tmp_path, {"ENGINE_MAX_INCLUDE_DEPTH": "4"})
    check(out, "ENGINE_MAX_INCLUDE_DEPTH")
