"""`engine codegen`: the generated file is standalone and reproduces the engine's model.

Every bundled spec is generated (a family's larger members aside, conftest.FAMILY_SPECS: the
same blocks deeper or wider); the engine-built model's state_dict is saved, and a FRESH
interpreter (which never imports engine or blocks) imports the generated file, loads the
state_dict with strict=True and runs the same input: outputs must match to 1e-6 (relative to
max(1, |output|)). Big models only check, on the meta device, that the generated model builds
with the engine's state_dict keys and shapes. All checks run in a few batched subprocesses.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import engine
import engine.views.codegen as codegen
import engine.views.codegen.layers as codegen_layers
from engine.cli import main
from engine.compiler.build import build
from engine.compiler.merge import SPECS_DIR

from ..conftest import FAMILY_SPECS

# Checked numerically (batch 1); every other bundled spec is checked on the meta device.
NUMERIC = ["alexnet", "vgg11_bn", "resnet18", "resnet50", "googlenet", "inception_v3",
           "densenet121", "convnext_tiny", "vit_b16", "squeezenet1_1"]
# The check compares two implementations, not accuracy: convolutional models with adaptive
# pooling run on smaller images than their spec's (ViT's position table needs its 224).
IMAGE_SIZE = {"inception_v3": 96, "vit_b16": None}
DEFAULT_IMAGE_SIZE = 64
BUNDLED = FAMILY_SPECS
TOLERANCE = 1e-6

SMALL = {
    "tiny_gan": """
        name: tiny_gan
        params: {z: 4}
        networks:
          generator:
            inputs: {z: [B, $z]}
            graph:
              fc: {op: linear, out: 6}
              act: tanh
          discriminator:
            inputs: {x: [B, 6]}
            graph:
              fc: {op: linear, out: 1}
              prob: sigmoid
    """,
    # Weight sharing (the same module called twice), tying (one tensor, two names), freezing,
    # a multi-output block, attention inside a seq, learned tensors and inline tensor ops.
    "shared_tied": """
        name: shared_tied
        inputs: {tokens: {shape: [B, T], dtype: long}}
        dims: {T: 5}
        blocks:
          mlp:
            params: {hidden: int}
            nodes:
              up: {op: linear, out: $hidden}
              act: gelu
              down: {op: linear, out: 6}
              halves: {op: chunk, chunks: 2, dim: -1}
              prod: {op: mul, in: [halves.0, halves.1]}
            outputs: {out: down, prod: prod}
        graph:
          embed: {op: embedding, num: 11, dim: 6}
          mix: {op: linear, out: 6}
          again: {share: mix}
          frozen: {op: linear, out: 6, freeze: true}
          m1: {op: mlp, hidden: 8}
          m2: {op: mlp, hidden: 12, in: m1.out}
          att: {seq: [{op: attention, heads: 2}, {op: layernorm}], in: m2.out}
          first: {op: select, index: 0}
          grid: {op: reshape, shape: [5, 2, 3], in: att}
          scale: {op: parameter, shape: [6], init: 0.5}
          scaled: {op: mul, in: [scale, att]}
          proj: {op: linear, out: 11, bias: false, tie: {weight: embed.weight}}
        outputs: {logits: proj, first: first, grid: grid, prod: m2.prod}
    """,
}
TIES = {"shared_tied": [["proj.weight", "embed.weight"]]}

RUNNER = r'''
import importlib.util, json, sys, traceback
import torch

def flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in flat(v)]
    return [t for v in out for t in flat(v)]

results = {}
for job in json.load(open(sys.argv[1])):
    try:
        spec = importlib.util.spec_from_file_location("generated_" + job["name"], job["file"])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if job["mode"] == "meta":
            with torch.device("meta"):
                model = module.build()
            results[job["name"]] = {"shapes": {k: list(v.shape)
                                               for k, v in model.state_dict().items()}}
            continue
        torch.manual_seed(1)  # a different initialisation: only the state_dict may matter
        model = module.build()
        model.load_state_dict(torch.load(job["state"]), strict=True)
        model.eval()
        data = torch.load(job["data"])
        diff = scale = 0.0
        with torch.no_grad():
            for net, inputs in data["inputs"].items():
                target = model[net] if net else model
                got, want = flat(target(*inputs)), flat(data["expected"][net])
                assert len(got) == len(want), (len(got), len(want))
                for a, b in zip(got, want):
                    diff = max(diff, (a - b).abs().max().item())
                    scale = max(scale, b.abs().max().item())
        ties = [model.get_parameter(a) is model.get_parameter(b) for a, b in job["ties"]]
        results[job["name"]] = {"diff": diff, "scale": scale, "ties": ties,
                                "frozen": sorted(n for n, p in model.named_parameters()
                                                 if not p.requires_grad)}
    except Exception:
        results[job["name"]] = {"error": traceback.format_exc()}
results["_imported"] = sorted(m for m in sys.modules if m.split(".")[0] in ("engine", "blocks"))
print(json.dumps(results))
'''


def _randomize_constants(model: torch.nn.Module) -> None:
    """Give constant tensors (zero heads, batchnorm's 1/0 weights and running stats) random
    values, so that a tensor loaded into the wrong place cannot go unnoticed."""
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if t.is_floating_point() and t.numel() > 1 and bool(t.min() == t.max()):
                t.copy_(torch.rand_like(t) + 0.5 if name.endswith("running_var")
                        else torch.randn_like(t) * 0.1)


def _example(info, size: int | None) -> torch.Tensor:
    shape = info.shape
    if size is not None and info.rank == 4:
        shape = (*shape[:2], size, size)
    if info.dtype.startswith("float"):
        return torch.randn(shape, dtype=getattr(torch, info.dtype))
    return torch.randint(0, 5, shape, dtype=getattr(torch, info.dtype))


def _numeric_job(name: str, spec, folder: Path) -> dict:
    shaped = engine.analyze(spec)
    path = codegen.write_codegen(shaped, folder / f"{name}.py")
    torch.manual_seed(0)
    model = build(shaped).eval()
    _randomize_constants(model)
    inputs, expected = {}, {}
    with torch.no_grad():
        for net in shaped.spec.networks:
            key = net if shaped.spec.multi else ""
            size = IMAGE_SIZE.get(name, DEFAULT_IMAGE_SIZE) if name in NUMERIC else None
            inputs[key] = [_example(i, size) for i in shaped.inputs[net].values()]
            expected[key] = (model[net] if shaped.spec.multi else model)(*inputs[key])
    torch.save(model.state_dict(), folder / f"{name}.state.pt")
    torch.save({"inputs": inputs, "expected": expected}, folder / f"{name}.data.pt")
    return {"name": name, "mode": "numeric", "file": str(path), "ties": TIES.get(name, []),
            "state": str(folder / f"{name}.state.pt"), "data": str(folder / f"{name}.data.pt"),
            "params": sum(p.numel() for p in model.parameters()),
            "frozen": sorted(n for n, p in model.named_parameters() if not p.requires_grad)}


def _meta_job(name: str, spec, folder: Path) -> dict:
    shaped = engine.analyze(spec)
    path = codegen.write_codegen(shaped, folder / f"{name}.py")
    reference = build(shaped, device="meta")
    return {"name": name, "mode": "meta", "file": str(path),
            "shapes": {k: list(v.shape) for k, v in reference.state_dict().items()}}


def _run(jobs: list[dict], folder: Path) -> dict:
    jobs_file = folder / "jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    runner = folder / "runner.py"
    runner.write_text(RUNNER)
    done = subprocess.run([sys.executable, str(runner), str(jobs_file)], capture_output=True,
                          text=True, cwd=folder, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """Generate every case, then check them in fresh interpreters: name -> (job, result)."""
    folder = tmp_path_factory.mktemp("codegen")
    specs = {name: SPECS_DIR / f"{name}.yaml" for name in BUNDLED}
    for name, text in SMALL.items():
        specs[name] = folder / f"{name}.yaml"
        specs[name].write_text(textwrap.dedent(text).lstrip())
    numeric = [n for n in NUMERIC if n in specs] + list(SMALL)
    jobs = [_numeric_job(n, specs[n], folder) for n in numeric]
    (folder / "copied").mkdir()
    with pytest.MonkeyPatch.context() as mp:  # the fallback: every block copied from blocks/
        mp.setattr(codegen_layers, "LAYERS", {})
        mp.setattr(codegen_layers, "EQUIVALENTS", {})
        mp.setattr(codegen_layers, "inline_expression", lambda node, module, refs, helpers: None)
        jobs += [dict(_numeric_job(n, specs[n], folder / "copied"), name=f"copied_{n}")
                 for n in ("shared_tied", "convnext_tiny")]
    jobs += [_meta_job(n, specs[n], folder) for n in BUNDLED if n not in numeric]
    results = _run(jobs, folder)
    assert results["_imported"] == [], "the generated files imported engine modules"
    return {job["name"]: (job, results[job["name"]]) for job in jobs}


def _assert_matches(job: dict, result: dict) -> None:
    assert "error" not in result, result.get("error")
    assert result["diff"] <= TOLERANCE * max(1.0, result["scale"]), result
    assert all(result["ties"]), "tied parameters are separate tensors in the generated model"
    assert result["frozen"] == job["frozen"]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_spec_generates_a_matching_standalone_model(checked, name):
    job, result = checked[name]
    assert "error" not in result, result.get("error")
    if job["mode"] == "meta":
        assert list(result["shapes"].items()) == list(job["shapes"].items())  # keys, order, shapes
    else:
        _assert_matches(job, result)
    imports = _imported_modules(Path(job["file"]).read_text())
    assert imports <= {"torch", "torchvision", "collections", "math", "__future__"}, imports


def test_several_networks_give_a_class_each_and_a_module_dict(checked):
    job, result = checked["tiny_gan"]
    _assert_matches(job, result)
    text = Path(job["file"]).read_text()
    assert "class Generator(nn.Module):" in text and "class Discriminator(nn.Module):" in text
    assert 'nn.ModuleDict({"generator": Generator(), "discriminator": Discriminator()})' in text


def test_sharing_tying_and_freezing_survive(checked):
    job, result = checked["shared_tied"]
    _assert_matches(job, result)  # includes: proj.weight *is* embed.weight, same frozen set
    text = Path(job["file"]).read_text()
    assert "again = self.mix(mix)" in text  # one module, called twice
    assert "self.proj.weight = self.embed.weight" in text
    assert "self.frozen.requires_grad_(False)" in text
    assert "class Mlp(nn.Module):" in text and "def __init__(self, hidden):" in text


@pytest.mark.parametrize("name", ["copied_shared_tied", "copied_convnext_tiny"])
def test_blocks_copied_from_their_source_also_match(checked, name):
    job, result = checked[name]
    _assert_matches(job, result)
    text = Path(job["file"]).read_text()
    assert "@register" not in text and "class Linear(nn.Linear):" in text


def test_resnet50_reads_like_torchvision():
    text = codegen.codegen_source(engine.analyze("resnet50"), "model.py")
    assert text.startswith("# Generated by `engine codegen` from specs/resnet50.yaml")
    assert "#     engine codegen resnet50 -o model.py\n" in text
    assert "class Bottleneck(nn.Module):" in text and "class Bottleneck2(nn.Module):" in text
    assert "def __init__(self, in_channels, width, stride=1):" in text
    assert "nn.Conv2d(width, width * 4, kernel_size=1, bias=False)" in text
    assert "Bottleneck(256, 128, stride=2)," in text
    assert "class Resnet50(nn.Module):" in text and "def build() -> nn.Module:" in text
    assert 'if __name__ == "__main__":' in text
    assert text == codegen.codegen_source(engine.analyze("resnet50"), "model.py")  # stable


def test_header_records_the_overrides_used():
    text = codegen.codegen_source(engine.analyze("resnet18", ["num_classes=10"]), "m.py")
    assert "#     engine codegen resnet18 --set num_classes=10 -o m.py\n" in text
    assert "nn.Linear(512, 10)" in text


def test_cli_writes_a_file_that_runs(tmp_path, capsys):
    out = tmp_path / "model.py"
    assert main(["codegen", "squeezenet1_1", "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    done = subprocess.run([sys.executable, str(out)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "logits (1, 1000)"


def test_generated_files_are_lint_clean(tmp_path, monkeypatch):
    ruff = pytest.importorskip("ruff")
    monkeypatch.chdir(tmp_path)  # short output names: the header's command stays short
    for name in ("vit_b16", "convnext_tiny", "inception_v3"):
        codegen.write_codegen(engine.analyze(name), f"{name}.py")
    done = subprocess.run([ruff.find_ruff_bin(), "check", "--no-cache", "--isolated",
                           "--select", "E,F,W,I,B,UP", "--line-length", "110", "."],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def _imported_modules(text: str) -> set[str]:
    tree = ast.parse(text)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            out.add((node.module or "").split(".")[0])
    return out
