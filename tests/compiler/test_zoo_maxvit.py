"""MaxViT-T against torchvision's maxvit_t, the oracle: same parameter count, same state_dict keys
and shapes (the relative_position_index buffers included, with torchvision's values), the same
stochastic depth rates, and with torchvision's weights (batch-norm statistics randomised, bias
tables widened so that a wrong window or grid layout shows) the same outputs at 224; plus summary."""

from __future__ import annotations

import pytest
import torch
import torchvision

import engine
from engine.compiler.build import build
from engine.views.summary import format_summary, node_params, summarize

pytestmark = pytest.mark.usefixtures("one_thread")  # batch 1: one thread is fastest


@pytest.fixture(scope="module")
def reference():
    """torchvision's maxvit_t on the meta device (no weights allocated)."""
    with torch.device("meta"):
        return torchvision.models.maxvit_t()


@pytest.fixture(scope="module")
def shaped():
    return engine.analyze("maxvit_t")


def test_parameter_count_equals_torchvision(reference, shaped):
    want = sum(p.numel() for p in reference.parameters())
    seen: set[int] = set()
    got = sum(node_params(n, shaped, seen) for g in shaped.spec.networks.values() for n in g.nodes)
    assert got == want == 30919624


def test_state_dict_keys_and_shapes_equal_torchvision(reference, shaped):
    model = build(shaped, device="meta")
    got = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    want = {k: (tuple(v.shape), v.dtype) for k, v in reference.state_dict().items()}
    assert got == want
    buffers = [k for k in got if k.endswith("relative_position_index")]
    assert len(buffers) == 2 * sum(shaped.spec.params["block_layers"])  # window and grid attention
    assert got["blocks.0.layers.0.layers.grid_attention.attn_layer.1.relative_position_index"] == \
        ((49, 49), torch.int64)


def test_buffers_and_drop_rates_equal_torchvisions():
    """The spec's helper computes the index; the drop rates grow as torchvision's linspace."""
    ref = torchvision.models.maxvit_t()
    model = engine.build("maxvit_t")
    got = model.state_dict()
    for key, value in ref.state_dict().items():
        if key.endswith("relative_position_index"):
            assert torch.equal(got[key], value), key
    modules = dict(model.named_modules())
    for name, module in ref.named_modules():
        if type(module).__name__ == "StochasticDepth":
            assert modules[name].p == pytest.approx(module.p, abs=1e-12), name
            assert modules[name].mode == module.mode == "row"


def test_loads_torchvision_weights_and_matches_outputs():
    torch.manual_seed(0)
    ref = torchvision.models.maxvit_t().eval()
    with torch.no_grad():
        for module in ref.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        for name, p in ref.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.normal_(0.0, 1.0)
    model = engine.build("maxvit_t").eval()
    engine.load_reference_state_dict(model, ref.state_dict(), "maxvit_t", strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        got, want = model(x), ref(x)
    assert got.shape == want.shape == (1, 1000)
    tolerance = 1e-5 * max(1.0, want.abs().max().item())
    assert (got - want).abs().max().item() <= tolerance


def test_summary(shaped):
    summary = summarize(shaped)
    text = format_summary(summary)
    assert "blocks" in text and "classifier" in text
    assert summary.params == sum(p.numel() for p in build(shaped, device="meta").parameters())
