"""benchmarks/docs_figures.py: the results tables of docs/ come from run folders, and docs/ agrees
with the records the script saved (a table edited by hand, or a record without its doc, fails)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from engine.compiler.merge import load_merged
from engine.train.tracking import write_status

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def figures():
    spec = importlib.util.spec_from_file_location("docs_figures", ROOT / "benchmarks" / "docs_figures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_figures"] = module  # its dataclass looks its module up while defined
    spec.loader.exec_module(module)
    return module


def fake_run(runs: Path, name: str, accuracy: float, state: str = "finished", evaluated: bool = True,
             **changed):
    """A run folder as `engine train` and `engine eval --baseline` leave it, trained with the
    bundled recipe of its name (its `extends:` merged, as the runner saves it) as it stands, or
    with `changed` keys."""
    folder = runs / name
    folder.mkdir(parents=True)
    recipe = json.loads(json.dumps(load_merged(ROOT / "recipes" / f"{name.rsplit('-', 2)[0]}.yaml",
                                               None, recipe=True)))
    (folder / "recipe.yaml").write_text(yaml.safe_dump({**recipe, **changed}, sort_keys=False))
    (folder / "metrics.csv").write_text("epoch,step,val_accuracy\n1,110,0.9\n2,220,0.95\n3,330,0.97\n")
    write_status(folder, state)
    if evaluated:
        (folder / "eval-test.json").write_text(json.dumps(
            {"split": "test", "samples": 2000, "accuracy": accuracy, "pixel_baseline_accuracy": 0.9015}))
    return folder


def test_every_docs_table_matches_its_record(figures, capsys):
    assert figures.main(["--check"]) == 0, capsys.readouterr().out


def test_the_latest_finished_evaluated_run_is_the_row(figures, tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "resnet18_mnist-20260101-000000", 0.9700)
    fake_run(runs, "resnet18_mnist-20260102-000000", 0.9855)
    fake_run(runs, "resnet18_mnist-20260103-000000", 0.9990, state="failed")  # not a result
    fake_run(runs, "resnet18_mnist-20260104-000000", 0.9990, evaluated=False)  # not evaluated yet
    table = next(t for t in figures.TABLES if t.name == "classification")
    rows = {r["recipe"]: r for r in figures.read_table(table, runs)}
    assert rows["resnet18_mnist"]["run"] == "resnet18_mnist-20260102-000000"
    assert rows["alexnet_mnist"] == {"label": "AlexNet", "recipe": "alexnet_mnist", "missing": True}
    text = figures.render(table, list(rows.values()))
    line = next(t for t in text.splitlines() if "`resnet18_mnist`" in t)
    assert "**98.55%**" in line and "90.15%" in line and "MNIST at 32x32, 2000 test" in line
    assert "| AlexNet | `alexnet_mnist` | not run yet |" in text


def test_write_then_check_finds_a_hand_edit(figures, tmp_path, capsys):
    runs, docs = tmp_path / "runs", tmp_path / "docs"
    fake_run(runs, "resnet18_mnist-20260102-000000", 0.9855)
    docs.mkdir()
    shutil.copy(ROOT / "docs" / "classification.md", docs / "classification.md")
    assert figures.main(["classification", "--runs", str(runs), "--docs", str(docs), "--write"]) == 0
    assert "**98.55%**" in (docs / "classification.md").read_text()
    assert figures.main(["classification", "--docs", str(docs), "--check"]) == 0
    doc = docs / "classification.md"
    doc.write_text(doc.read_text().replace("98.55%", "99.55%"))  # typed by hand
    capsys.readouterr()
    assert figures.main(["classification", "--docs", str(docs), "--check"]) == 1
    assert "differs from the one rendered" in capsys.readouterr().out


def test_a_run_of_an_older_recipe_is_not_its_figure(figures, tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "resnet18_mnist-20260102-000000", 0.9855, epochs=1)  # the recipe now says 3
    table = next(t for t in figures.TABLES if t.name == "classification")
    rows = {r["recipe"]: r for r in figures.read_table(table, runs)}
    assert rows["resnet18_mnist"]["stale"] == ["epochs: 1 -> 3"]
    line = next(t for t in figures.render(table, list(rows.values())).splitlines()
                if "`resnet18_mnist`" in t)
    assert "recipe changed since run `resnet18_mnist-20260102-000000` (epochs: 1 -> 3)" in line
    assert "98.55" not in line
