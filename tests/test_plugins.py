"""Your own blocks, from outside the repository: `engine -p FILE`, the `engine.blocks`
entry-point group, and `engine.register_block` from Python. Each case runs in a fresh process
(the registry is process-wide), in a temporary folder that is not the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ENGINE = Path(sys.executable).parent / "engine"

PLUGIN = '''
import torch
from torch import nn

import engine


@engine.register_block("scaled_tanh", category="activation", in_dim=1,
                       example={"args": {"scale": 2.0}, "inputs": [[2, 3, 4, 4]]})
class ScaledTanh(nn.Module):
    """scale * tanh(x), with a learned per-channel gain. [B, C, *] -> [B, C, *]."""

    def __init__(self, in_size: int, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, in_size))

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return self.scale * torch.tanh(x) * self.gain.view(shape)
'''

SPEC = '''
# A tiny net with a block of my own. engine -p my_blocks.py build my_net.yaml
name: my_net
inputs: {image: [B, 1, 8, 8]}
graph:
  conv: {op: conv, out: 4, k: 3, pad: 1}
  act: {op: scaled_tanh, scale: 3.0}
  pool: {op: adaptive_avgpool, size: 1}
  flat: {op: flatten}
  fc: {op: linear, out: 10}
'''


def run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    if not ENGINE.exists():
        pytest.skip(f"no console script at {ENGINE} (pip install -e .)")
    full_env = {**os.environ, **(env or {})}
    full_env.pop("ENGINE_DEBUG", None)
    return subprocess.run([str(ENGINE), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "my_blocks.py").write_text(PLUGIN)
    (tmp_path / "my_net.yaml").write_text(textwrap.dedent(SPEC).lstrip())
    return tmp_path


def test_build_summary_render_and_codegen_with_a_plugin_file(project):
    for argv in (["build", "my_net.yaml"], ["summary", "my_net.yaml"],
                 ["render", "my_net.yaml", "-o", "net.svg"],
                 ["codegen", "my_net.yaml", "-o", "model.py"]):
        result = run(["-p", "my_blocks.py", *argv], project)
        assert result.returncode == 0, (argv, result.stderr)
    assert "scaled_tanh" in run(["-p", "my_blocks.py", "summary", "my_net.yaml"], project).stdout
    assert "<svg" in (project / "net.svg").read_text()
    # the generated file stands alone (the plugin class copied into it) and computes what the
    # engine-built model computes, with the same weights
    check = textwrap.dedent('''
        import importlib.util, sys, torch
        sys.path.insert(0, ".")
        import my_blocks, engine
        torch.manual_seed(0)
        built = engine.build("my_net.yaml").eval()
        spec = importlib.util.spec_from_file_location("generated", "model.py")
        generated = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(generated)
        assert "import my_blocks" not in open("model.py").read()
        standalone = generated.build().eval()
        standalone.load_state_dict(built.state_dict(), strict=True)
        x = torch.randn(2, 1, 8, 8)
        assert torch.equal(built(x), standalone(x))
        print("same")
    ''')
    result = subprocess.run([sys.executable, "-c", check], cwd=project, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and "same" in result.stdout, result.stderr


def test_without_the_plugin_the_op_is_unknown_and_the_hint_says_how_to_load_it(project):
    result = run(["build", "my_net.yaml"], project)
    assert result.returncode == 1
    assert "unknown op 'scaled_tanh'" in result.stderr
    assert "engine -p my_blocks.py" in result.stderr


def test_an_installed_package_registers_through_the_entry_point_group(project, tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "my_plugin").mkdir()
    (site / "my_plugin" / "__init__.py").write_text(PLUGIN)
    info = site / "my_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[engine.blocks]\nmy_plugin = my_plugin\n")
    env = {"PYTHONPATH": str(site)}
    result = run(["build", "my_net.yaml"], project, env)
    assert result.returncode == 0, result.stderr
    assert "scaled_tanh" in result.stdout or "act" in result.stdout
    assert run(["blocks"], project, env).stdout.count("scaled_tanh") == 1


@pytest.mark.parametrize("body, message", [
    ("import engine\nengine.register_block('relu', category='activation')(type('R', (), {}))",
     "block 'relu' is registered twice"),
    ("import engine\nengine.register_block('mine', category='activations')",
     "unknown category 'activations'; did you mean 'activation'?"),
    ("raise RuntimeError('broken on purpose')", "RuntimeError: broken on purpose"),
])
def test_a_bad_plugin_is_a_clear_error_not_a_traceback(project, body, message):
    (project / "bad.py").write_text(body + "\n")
    result = run(["-p", "bad.py", "build", "my_net.yaml"], project)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    missing = run(["-p", "nowhere.py", "list"], project)
    assert missing.returncode == 2 and "plugin file 'nowhere.py' does not exist" in missing.stderr


def test_register_block_from_python(project):
    code = textwrap.dedent('''
        import sys; sys.path.insert(0, ".")
        import torch, engine, my_blocks
        model = engine.build("my_net.yaml")
        assert type(model.act).__name__ == "ScaledTanh" and model.act.scale == 3.0
        print(tuple(model(torch.randn(2, 1, 8, 8)).shape))
    ''')
    result = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and "(2, 10)" in result.stdout, result.stderr
