"""The bundled recipes: each loads and validates (with its spec's shapes), and a few train 2 steps."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from engine.cli import main
from engine.compiler.ir import SpecError
from engine.train.recipe import load_recipe
from tests.compiler.test_torchvision_parity import VARIANTS
from tests.conftest import REPO, recipe_folders

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


@pytest.fixture
def load(data_root_for):
    """load(path): load_recipe on the shared data, or on tests/tiny_data.py's stand-ins where a
    folder the recipe reads is missing (a fresh clone), so that the recipe is still checked."""

    def load_(path: Path):
        data_root_for(*recipe_folders(path))
        try:
            return load_recipe(path)
        except SpecError as err:
            offline = [d for d in err.diagnostics if d.path == "data.root" and "cannot download" in d.message]
            if offline:  # a recipe for users with internet (IMDB): here its data cannot be fetched
                pytest.skip(f"{path.name}: {offline[0].message}")
            raise

    return load_


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_loads_and_validates(path, load):
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# "), f"{path.name} must open with a comment"
    assert any(f"engine train recipes/{path.name}" in ln for ln in lines if ln.startswith("#"))
    recipe = load(path)
    assert recipe.name == path.stem


def test_every_torchvision_classifier_has_an_mnist_recipe():
    missing = [spec for spec in VARIANTS if not (REPO / "recipes" / f"{spec}_mnist.yaml").is_file()]
    assert not missing


@pytest.mark.parametrize("name", ["resnet18_mnist", "vit_b16_mnist", "densenet121_mnist"])
def test_two_training_steps_on_cpu(name, tmp_path, load):
    path = REPO / "recipes" / f"{name}.yaml"
    load(path)
    argv = ["train", str(path), "--set", "epochs=null", "--set", "steps=2",
            "--set", "data.batch_size=8",
            "--set", "eval.every_epochs=0",  # no pass over the 1,000 val digits: seconds, not minutes
            "--device", "cpu", "--output", str(tmp_path)]
    assert main(argv) == 0
    (folder,) = tmp_path.iterdir()
    with (folder / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and rows[-1]["step"] == "2"
    assert math.isfinite(float(rows[-1]["train_loss"]))
