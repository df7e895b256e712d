"""Which rank-4 tensors are channels-first feature maps: a conv's output and, unless declared
otherwise, a rank-4 input; `channels_first: false` on an input says its last dim is features
(Swin's [B, windows, tokens, C]), so layers that act on the last dim take it."""

from __future__ import annotations

import torch

import engine

SPEC = """
name: tokens
inputs: {tokens: {shape: [B, 4, 49, 32], channels_first: false}}
graph:
  fc: {op: linear, out: 8}
"""


def test_a_rank4_input_declared_channels_last_feeds_a_linear(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text(SPEC)
    model = engine.build(path)
    x = torch.randn(2, 4, 49, 32)
    reference = torch.nn.Linear(32, 8)
    reference.load_state_dict({k.split(".", 1)[1]: v for k, v in model.state_dict().items()})
    torch.testing.assert_close(model(x), reference(x))
