"""Transformer layers (blocks/transformer.py) against torch's nn.TransformerEncoderLayer and
nn.TransformerDecoderLayer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.blocks.transformer import TransformerDecoderLayer, TransformerEncoderLayer

D, H, B, T = 5, 7, 3, 6


def _close(a, b, tol=1e-6):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def _encoder_pair(norm_first):
    torch.manual_seed(10)
    ref = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True, norm_first=norm_first)
    ours = TransformerEncoderLayer(8, heads=2, ffn=16, norm_first=norm_first)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours.eval(), ref.eval()


def _decoder_pair(norm_first, activation="relu"):
    torch.manual_seed(11)
    ref = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.1, activation=activation,
                                     batch_first=True, norm_first=norm_first)
    ours = TransformerDecoderLayer(8, heads=2, ffn=16, norm_first=norm_first, activation=activation)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours.eval(), ref.eval()


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_torch(norm_first):
    ours, ref = _encoder_pair(norm_first)
    x = torch.randn(B, T, 8)
    mask = torch.arange(T)[None, :] >= torch.tensor([T, 3, 5])[:, None]
    want = ref(x, src_key_padding_mask=mask)
    got = ours(x, mask)
    valid = ~mask  # torch's fast path may leave padded rows as anything; compare real tokens
    _close(got[valid], want[valid], 1e-5)
    _close(ours(x), ref(x), 1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_decoder_layer_matches_torch(norm_first, activation):
    ours, ref = _decoder_pair(norm_first, activation)
    x, memory = torch.randn(B, T, 8), torch.randn(B, 4, 8)
    mem_mask = torch.arange(4)[None, :] >= torch.tensor([4, 2, 3])[:, None]
    want = ref(x, memory, tgt_mask=nn.Transformer.generate_square_subsequent_mask(T),
               tgt_is_causal=True, memory_key_padding_mask=mem_mask)
    _close(ours(x, memory, mem_mask), want, 1e-5)


def test_decoder_layer_is_causal_and_ignores_source_padding():
    ours, _ = _decoder_pair(False)
    x, memory = torch.randn(B, T, 8), torch.randn(B, 4, 8)
    mem_mask = torch.arange(4)[None, :] >= torch.tensor([4, 2, 3])[:, None]
    base = ours(x, memory, mem_mask)
    later = x.clone()
    later[:, 3] += 5.0  # a future target token changes
    changed = ours(later, memory, mem_mask)
    _close(changed[:, :3], base[:, :3])
    assert not torch.allclose(changed[:, 3:], base[:, 3:])
    padded = memory.clone()
    padded[1, 2:] = torch.randn(2, 8)  # only row 1's padded source positions
    _close(ours(x, padded, mem_mask), base)
    # the controls: without the mask, or with causal off, the same changes do show
    assert not torch.allclose(ours(x, padded), ours(x, memory))
    ours.causal = False
    assert not torch.allclose(ours(later, memory, mem_mask)[:, :3], ours(x, memory, mem_mask)[:, :3])


def test_encoder_layer_ignores_padded_tokens():
    ours, _ = _encoder_pair(True)
    x = torch.randn(B, T, 8)
    mask = torch.arange(T)[None, :] >= torch.tensor([T, 3, 5])[:, None]
    changed = x.clone()
    changed[1, 3:] = torch.randn(3, 8)
    _close(ours(changed, mask)[1, :3], ours(x, mask)[1, :3])


def test_transformer_layer_rejects_unknown_activation():
    with pytest.raises(ValueError, match="'gelu'"):
        TransformerEncoderLayer(8, heads=2, ffn=16, activation="swish")


def test_transformer_layer_reset_initialises_attention_after_to_empty():
    with torch.device("meta"):
        layer = TransformerDecoderLayer(8, heads=2, ffn=16)
    layer = layer.to_empty(device="cpu")
    for p in layer.parameters():
        p.data.fill_(float("nan"))
    for m in reversed(list(layer.modules())):
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    assert all(torch.isfinite(p).all() for p in layer.parameters())
    assert (layer.self_attn.in_proj_bias == 0).all()  # MultiheadAttention's own init
