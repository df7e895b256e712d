"""torchvision's RegNet family (specs/regnet_*.yaml) against torchvision, the oracle: all 15
models are specs extending one base, the two 400MF models give the same outputs after a strict
load, and regnet_y_400mf generates standalone code (dashed module names such as `block1-0`).
(Parameter counts and state_dict keys and shapes of the whole zoo: tests/compiler/test_zoo.py.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torchvision

import engine
import engine.views.codegen as codegen
from engine.compiler.build import build
from engine.compiler.load import load_file
from engine.compiler.merge import SPECS_DIR
from tests.oracle import randomise_batchnorm

MODELS = sorted(m for m in torchvision.models.list_models(module=torchvision.models)
                if m.startswith("regnet_"))
BASE = "regnet_y_400mf"


def test_the_family_is_all_of_torchvisions_regnets():
    assert len(MODELS) == 15
    assert MODELS == sorted(p.stem for p in SPECS_DIR.glob("regnet_*.yaml"))


@pytest.mark.parametrize("name", sorted(set(MODELS) - {BASE}))
def test_variants_extend_the_family_base(name):
    doc = load_file(SPECS_DIR / f"{name}.yaml")
    assert doc["extends"] in (f"{BASE}.yaml", "regnet_x_400mf.yaml")
    assert set(doc) == {"extends", "name", "params"}  # the numbers only: no blocks, no graph


@pytest.mark.parametrize("name", ["regnet_y_400mf", "regnet_x_400mf"])
def test_loads_torchvision_weights_and_matches_outputs(name):
    torch.manual_seed(0)
    ref = getattr(torchvision.models, name)().eval()
    randomise_batchnorm(ref)
    model = engine.build(name).eval()
    engine.load_reference_state_dict(model, ref.state_dict(), name, strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got, want = model(x), ref(x)
    tolerance = 1e-5 * max(1.0, want.abs().max().item())
    assert (got - want).abs().max().item() <= tolerance


RUNNER = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("generated", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
torch.manual_seed(1)  # another initialisation: only the state_dict may matter
model = module.build().eval()
model.load_state_dict(torch.load(sys.argv[2]), strict=True)
data = torch.load(sys.argv[3])
with torch.no_grad():
    got = model(data["x"])
print((got - data["want"]).abs().max().item(), data["want"].abs().max().item())
print(sorted(m for m in sys.modules if m.split(".")[0] in ("engine", "blocks")))
"""


def test_codegen_round_trip_with_dashed_names(tmp_path):
    shaped = engine.analyze(BASE)
    path = codegen.write_codegen(shaped, tmp_path / f"{BASE}.py")
    source = path.read_text()
    compile(source, str(path), "exec")  # valid Python despite `block1-0`
    assert "'block1-0'" in source or '"block1-0"' in source
    torch.manual_seed(0)
    model = build(shaped).eval()
    randomise_batchnorm(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = model(x)
    torch.save(model.state_dict(), tmp_path / "state.pt")
    torch.save({"x": x, "want": want}, tmp_path / "data.pt")
    (tmp_path / "runner.py").write_text(textwrap.dedent(RUNNER))
    done = subprocess.run([sys.executable, str(tmp_path / "runner.py"), str(path),
                           str(tmp_path / "state.pt"), str(tmp_path / "data.pt")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    diff_line, imported = done.stdout.strip().splitlines()[-2:]
    diff, scale = map(float, diff_line.split())
    assert diff <= 1e-6 * max(1.0, scale)
    assert imported == "[]", "the generated file imported engine modules"
