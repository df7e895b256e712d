"""Shape inference without default initialisation, and its MAC counter.

The oracles: PyTorch's FlopCounterMode for the MACs, and the same spec built with the real
initialisation schemes active during shape inference for the weights (bit for bit, fixed seed).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import engine
import engine.compiler.shapes as shapes
from engine.compiler.build import build

from ..conftest import REPO

SPECS = ["resnet18", "vit_b16", "mobilenet_v3_small", "transformer_small", "sngan", "lstm"]


class _FlopCounter(FlopCounterMode):
    """PyTorch's own counter behind the MacCounter interface: the reference."""

    def __init__(self):
        super().__init__(display=False)

    @property
    def flops(self) -> int:
        return self.get_total_flops()


@pytest.mark.parametrize("spec", SPECS)
def test_macs_are_pytorch_flop_counters(spec, monkeypatch):
    ours = engine.analyze(spec)
    monkeypatch.setattr(shapes, "MacCounter", _FlopCounter)
    theirs = engine.analyze(spec)
    assert {p: r.macs for p, r in ours.nodes.items()} == {p: r.macs for p, r in theirs.nodes.items()}
    assert sum(r.macs for r in ours.nodes.values()) > 0


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("spec", SPECS)
def test_built_weights_are_those_of_a_full_initialisation(spec, monkeypatch):
    torch.manual_seed(0)
    fast = _state(build(engine.analyze(spec)))
    monkeypatch.setattr(shapes, "skip_init", contextlib.nullcontext)
    torch.manual_seed(0)
    full = _state(build(engine.analyze(spec)))
    assert fast.keys() == full.keys()
    for key in fast:
        assert torch.equal(fast[key], full[key]), key
        assert not fast[key].is_floating_point() or torch.isfinite(fast[key]).all(), key


def test_skip_init_restores_the_schemes():
    before = nn.init.kaiming_uniform_
    weight = torch.zeros(3, 3)
    with shapes.skip_init():
        assert nn.init.kaiming_uniform_(weight) is weight and not weight.any()
    assert nn.init.kaiming_uniform_ is before
    nn.init.kaiming_uniform_(weight)
    assert weight.any()


def test_mac_counter_matches_and_does_not_import_dynamo():
    # TorchDispatchMode's default wrapper imports torch._dynamo (seconds) on a mode's first op
    code = """
import json, sys, torch
from torch import nn
from engine.compiler.shapes import MacCounter
conv = nn.Conv2d(3, 8, 3, device="meta")
with MacCounter() as counter:
    conv(torch.empty(2, 3, 16, 16, device="meta"))
print(json.dumps([counter.flops, "torch._dynamo" in sys.modules]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    flops, dynamo = json.loads(result.stdout.splitlines()[-1])
    assert flops == 2 * 2 * 8 * 14 * 14 * 3 * 3 * 3 and not dynamo


def test_like_nodes_share_a_layer_but_build_their_own_modules():
    shaped = engine.analyze("resnet18")
    first, second = shaped.nodes["layer1.0.conv1"], shaped.nodes["layer1.1.conv1"]
    assert first.layer is second.layer  # same op and arguments: constructed once
    assert first.module is not second.module and first.module is first.module
    assert first.module.weight.is_meta and first.module.weight.shape == first.layer.weight.shape


def test_a_constructor_error_is_reported_at_every_node_that_has_it(tmp_path):
    path = tmp_path / "two_bad.yaml"
    path.write_text("# two convs whose groups do not divide their channels\nname: two_bad\n"
                    "inputs: {x: [B, 6, 8, 8]}\n"
                    "graph:\n  a: {op: conv, out: 6, k: 3, groups: 4}\n"
                    "  b: {op: conv, in: x, out: 6, k: 3, groups: 4}\n")
    with pytest.raises(engine.SpecError) as err:
        engine.analyze(path)
    assert sorted(d.path for d in err.value.diagnostics) == ["a", "b"]
    assert all("cannot construct 'conv'" in d.message for d in err.value.diagnostics)


def test_skip_init_leaves_other_threads_initialising_and_survives_overlapping_threads():
    """skip_init is per thread: while one thread analyses (the viewer's server does, per
    request), another thread's weights are still initialised, and overlapping blocks in many
    threads leave every scheme working afterwards (a global swap once left the no-op in place,
    and later builds kept uninitialised memory)."""
    import threading
    inside, release = threading.Event(), threading.Event()

    def analyse_and_wait():
        with shapes.skip_init():
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=analyse_and_wait)
    worker.start()
    assert inside.wait(10)
    weight = torch.zeros(3, 3)
    nn.init.kaiming_uniform_(weight)  # this thread is not inside skip_init
    release.set()
    worker.join()
    assert weight.any()

    threads = [threading.Thread(target=lambda: [engine.analyze("densenet121") for _ in range(3)])
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    weight = torch.zeros(3, 3)
    nn.init.kaiming_uniform_(weight)
    assert weight.any()
