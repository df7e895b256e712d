"""ShuffleNet V2 (x0_5, x1_0, x1_5, x2_0) against torchvision, the oracle: same outputs; the base
also through codegen, render and summary. (Counts, keys and shapes: tests/compiler/test_zoo.py.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torchvision

import engine
from engine.views import codegen
from engine.views.render import render_dot
from engine.views.summary import format_summary, summarize
from tests.oracle import randomise_batchnorm

VARIANTS = ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]
BASE = "shufflenet_v2_x1_0"
# torchvision's published GFLOPS (its weights' `_ops`, 224x224) are these MACs, rounded
OPS = {"shufflenet_v2_x0_5": 0.04, "shufflenet_v2_x1_0": 0.145, "shufflenet_v2_x1_5": 0.296,
       "shufflenet_v2_x2_0": 0.583}


@pytest.mark.parametrize("spec", ["shufflenet_v2_x1_0", "shufflenet_v2_x0_5"])
def test_loads_torchvision_weights_and_matches_outputs(spec):
    torch.manual_seed(0)
    ref = getattr(torchvision.models, spec)().eval()
    randomise_batchnorm(ref)
    model = engine.build(spec).eval()
    engine.load_reference_state_dict(model, ref.state_dict(), spec, strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got, want = model(x), ref(x)
    assert got.shape == want.shape == (1, 1000)
    tolerance = 1e-5 * max(1.0, want.abs().max().item())
    assert (got - want).abs().max().item() <= tolerance


@pytest.mark.parametrize("spec", ["shufflenet_v2_x0_5", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"])
def test_variants_extend_the_base(spec):
    from engine.compiler.load import load_file
    from engine.compiler.merge import SPECS_DIR
    doc = load_file(SPECS_DIR / f"{spec}.yaml")
    assert doc["extends"] == f"{BASE}.yaml"


@pytest.mark.parametrize("spec", VARIANTS)
def test_summary_equals_torchvision_published_figures(spec):
    with torch.device("meta"):
        ref = getattr(torchvision.models, spec)()
    summary = summarize(engine.analyze(spec))
    assert summary.params == summary.trainable == sum(p.numel() for p in ref.parameters())
    assert round(summary.macs / 1e9, 3) == OPS[spec]


def test_summary_and_render_of_the_base():
    shaped = engine.analyze(BASE)
    text = format_summary(summarize(shaped))
    assert "2,278,604" in text and "[1, 1024, 7, 7]" in text
    dot = render_dot(shaped)
    assert "stage2" in dot and "stage4" in dot and '[label=" 116×28×28"]' in dot
    expanded = render_dot(shaped, expand=["stage2.1"])
    assert "cluster_n_stage2_1" in expanded and "n_stage2_1_branch2" in expanded


CHECK = """
import importlib.util, sys
import torch
spec = importlib.util.spec_from_file_location("generated", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
torch.manual_seed(1)  # a different initialisation: only the state_dict may matter
model = module.build()
model.load_state_dict(torch.load(sys.argv[2]), strict=True)
data = torch.load(sys.argv[3])
with torch.no_grad():
    got = model.eval()(data["x"])
diff = (got - data["want"]).abs().max().item()
assert diff <= 1e-6 * max(1.0, data["want"].abs().max().item()), diff
assert not [m for m in sys.modules if m.split(".")[0] in ("engine", "blocks")]
print("ok")
"""


def test_codegen_round_trip(tmp_path):
    shaped = engine.analyze(BASE)
    path = codegen.write_codegen(shaped, tmp_path / "model.py")
    text = path.read_text()
    assert ".chunk(2, 1)" in text and "ChannelShuffle(groups=2)" in text
    torch.manual_seed(0)
    model = engine.build(BASE).eval()
    randomise_batchnorm(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = model(x)
    torch.save(model.state_dict(), tmp_path / "state.pt")
    torch.save({"x": x, "want": want}, tmp_path / "data.pt")
    (tmp_path / "check.py").write_text(textwrap.dedent(CHECK))
    done = subprocess.run([sys.executable, "check.py", str(path), "state.pt", "data.pt"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"
