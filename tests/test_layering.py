"""The layering rule of tests/layering.py holds for the source, and a planted break is caught."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.conftest import REPO
from tests.layering import LAYERS, violations


def test_no_layer_imports_a_higher_one_and_no_private_name_leaves_its_package():
    found = violations(REPO)
    assert not found, "layering broken:\n" + "\n".join(found)


def test_engine_is_its_three_packages_and_the_top_level():
    entries = sorted(p.name for p in (REPO / "engine").iterdir() if p.name != "__pycache__")
    assert len(entries) <= 8, entries
    assert {"compiler", "views", "train", "cli.py", "__init__.py"} <= set(entries)


def _tree(root: Path, files: dict[str, str]) -> None:
    for package in ("blocks", "engine", "engine/compiler", "engine/views", "engine/train",
                    "engine/train/evaluation", "engine/train/procedures"):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text).lstrip())


def test_planted_violations_are_reported_with_file_and_line(tmp_path):
    _tree(tmp_path, {
        "engine/compiler/shapes.py": """
            import torch


            def infer():
                from engine.views.render import draw  # a function-level import counts too
                return draw
            """,
        "engine/views/render.py": "from engine.compiler.shapes import _private_helper\n",
        "blocks/conv.py": "import engine.train.runner\n",
        "engine/train/evaluation/sampling.py": "from engine.train.procedures import gan\n",
        "engine/train/procedures/gan.py": "from engine.train.evaluation.sampling import save_grid\n",
    })
    found = violations(tmp_path)
    assert any(v.startswith("engine/compiler/shapes.py:5: engine.compiler imports engine.views.render")
               for v in found), found
    assert any(v.startswith("engine/views/render.py:1: ") and "private name(s) _private_helper" in v
               for v in found), found
    assert any(v.startswith("blocks/conv.py:1: engine.blocks imports engine.train.runner")
               for v in found), found
    assert any(v.startswith("engine/train/evaluation/sampling.py:1: ") and "inside engine.train" in v
               for v in found), found
    assert len(found) == 4, found  # procedures may import the evaluation side: not reported


def test_the_layers_are_ordered_as_the_readme_draws_them():
    readme = (REPO / "engine" / "README.md").read_text()
    assert " < ".join(LAYERS) in readme
