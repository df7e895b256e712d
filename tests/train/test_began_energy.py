"""benchmarks/began_energy.py: BEGAN's per-class energies agree with `engine eval`'s real energy
(their count-weighted mean is the test split's mean L1 energy the procedure reports)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = "spec={name: began, set: {width: 4, d_widths: [4, 8, 8], latent: 8}}"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def began_energy():
    spec = importlib.util.spec_from_file_location("began_energy", ROOT / "benchmarks" / "began_energy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_class_energies_average_to_the_evaluated_real_energy(began_energy, data_root_for, tmp_path):
    data_root_for("mnist")
    sets = ["--set", TINY, "--set", "epochs=null", "--set", "steps=2", "--set", "data.batch_size=8",
            "--set", "eval.every_epochs=0", "--set", "eval.sample_metrics=[]"]
    assert main(["train", "began_mnist", "--device", "cpu", "--output", str(tmp_path), *sets]) == 0
    run = next(tmp_path.glob("began_mnist-*"))
    assert main(["eval", "began_mnist", "--checkpoint", str(run / "checkpoints" / "last.pt"),
                 "--split", "test", *sets]) == 0
    evaluated = json.loads((run / "eval-test.json").read_text())

    rows = began_energy.class_energies(run, "last.pt")
    total = sum(r["count"] for r in rows)
    assert total == evaluated["samples"]
    weighted = sum(r["energy"] * r["count"] for r in rows) / total
    assert weighted == pytest.approx(evaluated["real_energy"], rel=1e-5)
    assert sum(r["ratio"] * r["count"] for r in rows) / total == pytest.approx(1.0, rel=1e-5)
    assert all(0 <= r["ink"] <= 1 for r in rows)
    table = began_energy.render(rows, run, "last.pt")
    assert table.splitlines()[0] == "| digit | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 |"
