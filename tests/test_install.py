"""Acceptance: the wheel, installed into a fresh environment, works from a folder outside the checkout.

The wheel is built from a copy of the sources (the checkout gets no build/ or egg-info), installed
with --no-deps into a new virtual environment that borrows the heavy dependencies (torch, ...) of
the environment running the tests through a .pth line. A plain path line does not run the .pth
files of the folder it adds, so the checkout's editable install stays out: the engine the commands
run is the wheel's, and the bundled specs and recipes must come from inside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

SOURCES = ("pyproject.toml", "README.md", "engine", "blocks", "specs", "recipes")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                             "--no-index", "--disable-pip-version-check", "-q", "-w", str(dist),
                             str(source)], capture_output=True, text=True, timeout=300,
                            env=_clean_env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    found = list(dist.glob("engine-*.whl"))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def env(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel and, by a .pth line, this environment's packages."""
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=False, symlinks=os.name != "nt")
    python = root / "bin" / "python"
    result = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                             "--no-index", "--disable-pip-version-check", "-q", str(wheel)],
                            capture_output=True, text=True, timeout=300, env=_clean_env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    # after the install, so that pip never sees (or offers to replace) the checkout's editable engine
    site = Path(_ask(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])"))
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "borrowed_dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    return root


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "ENGINE_DATA")}


def _ask(python: Path, code: str) -> str:
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120,
                            env=_clean_env(), cwd=python.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def engine(env: Path, cwd: Path, *argv: str) -> str:
    """Run the new environment's `engine` command in `cwd`; its stdout (it must exit 0)."""
    result = subprocess.run([str(env / "bin" / "engine"), *argv], capture_output=True, text=True,
                            cwd=cwd, env=_clean_env(), timeout=300)
    assert result.returncode == 0, f"engine {' '.join(argv)}:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result.stdout


def test_the_wheel_holds_every_module_and_the_bundled_yaml(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {str(p.relative_to(REPO)) for p in (REPO / "engine").rglob("*.py") if "__pycache__" not in p.parts}
    want |= {f"engine/{p.relative_to(REPO)}" for p in (REPO / "blocks").rglob("*.py")
             if "__pycache__" not in p.parts}  # the blocks/ folder ships as engine.blocks
    for folder in ("specs", "recipes"):
        want |= {f"engine/{folder}/{p.name}" for p in (REPO / folder).glob("*.yaml")}
        want.add(f"engine/{folder}/__init__.py")
    missing = sorted(want - names)
    assert not missing, f"not in the wheel (pyproject.toml's packages list?): {missing[:20]}"


def test_the_new_environment_imports_the_wheel_not_the_checkout(env):
    python = env / "bin" / "python"
    out = _ask(python, "import sys, engine, engine.blocks; from engine.compiler.merge import RECIPES_DIR,"
                       " SPECS_DIR; print(engine.__file__, SPECS_DIR, RECIPES_DIR, sep='\\n');"
                       "print(any('editable' in repr(f) for f in sys.meta_path));"
                       "print(engine.blocks.__file__, engine.__path__)")
    site = Path(_ask(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])")).resolve()
    file, specs, recipes, editable, blocks = out.splitlines()
    assert Path(file).resolve() == site / "engine" / "__init__.py"
    assert blocks.startswith(str(site / "engine" / "blocks" / "__init__.py"))  # one search path
    assert Path(specs) == site / "engine" / "specs" and Path(recipes) == site / "engine" / "recipes"
    assert editable == "False"
    assert str(REPO) not in out


def test_list_and_version_from_the_wheel(env, tmp_path):
    from importlib.metadata import version
    out = engine(env, tmp_path, "list")
    assert any(line.split()[0] == "resnet50" for line in out.splitlines())
    assert "digits_cnn" not in out
    out = engine(env, tmp_path, "list", "--recipes")
    assert any(line.split()[0] == "digits_cnn" for line in out.splitlines())
    assert engine(env, tmp_path, "--version").strip() == f"engine {version('engine')}"


def test_build_resnet50_from_the_wheel(env, tmp_path):
    out = engine(env, tmp_path, "build", "resnet50", "--depth", "1")
    assert "built resnet50: 25,557,032 parameters" in out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_vit_b16_from_the_wheel(env, tmp_path):
    engine(env, tmp_path, "render", "vit_b16", "-o", "x.svg")
    assert "<svg" in (tmp_path / "x.svg").read_text()


def test_train_digits_cnn_two_steps_from_the_wheel(env, tmp_path):
    out = engine(env, tmp_path, "train", "digits_cnn", "--set", "epochs=null", "--set", "steps=2",
                 "--device", "cpu")
    assert "run folder: runs/digits_cnn-" in out
    assert len(list(tmp_path.glob("runs/digits_cnn-*/checkpoints/last.pt"))) == 1
