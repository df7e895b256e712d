"""Start-up: what `import engine`, `engine --help` and a validation import, in a fresh process.

An oracle that can fail, unlike a time: `torch` costs seconds of CPU to import and
`torchvision.ops` adds `torch._dynamo` (more seconds); `import engine` and `engine --help` need
neither. benchmarks/bench_views.py prints the times.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import REPO

HEAVY = ("torchvision.ops", "torch._dynamo")


def imported_after(code: str) -> set[str]:
    """The modules loaded once `code` has run in a new interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_import_engine_imports_no_torch():
    loaded = imported_after("import engine")
    assert "torch" not in loaded and not loaded & set(HEAVY)


def test_help_imports_no_torch():
    code = ("import contextlib, io\nfrom engine.cli import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['--help'])")
    loaded = imported_after(code)
    assert "torch" not in loaded and not loaded & set(HEAVY)


def test_validate_and_summary_import_no_torchvision_ops():
    # efficientnet's stochastic depth is torchvision's: imported by a forward, not by shapes.
    # (torch._dynamo does come in here: PyTorch's meta kernels of addmm, mean ... are Python
    # decompositions that import it on first use; tests/compiler/test_shape_inference.py checks
    # that the engine's own MAC counter does not.)
    code = ("from engine.cli import main\nassert main(['validate', 'efficientnet_b0']) == 0\n"
            "assert main(['summary', 'efficientnet_b0']) == 0")
    assert "torchvision.ops" not in imported_after(code)


def test_public_names_still_there():
    import engine
    for name in engine.__all__:
        assert getattr(engine, name) is not None
    with pytest.raises(AttributeError):
        engine.no_such_name  # noqa: B018
