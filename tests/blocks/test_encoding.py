"""Position, timestep and label encodings (blocks/encoding.py) against closed forms and
plain-torch oracles."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.blocks.encoding import OneHot, PositionalEncoding, TimeEmbedding


def _close(a, b, tol=1e-6):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def _ddpm_reference(t, dim):
    # get_timestep_embedding from Ho et al.'s diffusion code (nn.py), in torch
    half = dim // 2
    emb = math.log(10000) / (half - 1)
    emb = torch.exp(torch.arange(half, dtype=torch.float32) * -emb)
    emb = t.float()[:, None] * emb[None, :]
    return torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)


def test_sinusoidal_table_matches_closed_form():
    d = 6
    pe = PositionalEncoding(d, max_len=50)
    for pos in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert pe.pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe.pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert "pe" not in pe.state_dict() and not list(pe.parameters())
    x = torch.randn(2, 5, d)
    _close(pe(x), x + pe.pe[:5])
    _close(PositionalEncoding(d, scale=3.0)(x), 3.0 * x + pe.pe[:5])
    odd = PositionalEncoding(5, max_len=4)
    assert odd.pe[3, 4].item() == pytest.approx(math.sin(3 / 10000 ** (4 / 5)), abs=1e-6)


def test_sinusoidal_buffer_refilled_after_to_empty():
    with torch.device("meta"):
        pe = PositionalEncoding(6, max_len=10)
    pe = pe.to_empty(device="cpu")
    pe.pe.fill_(float("nan"))
    pe.reset_parameters()
    _close(pe.pe, PositionalEncoding(6, max_len=10).pe)


def test_learned_positional_encoding_is_a_parameter():
    pe = PositionalEncoding(6, kind="learned", max_len=20)
    assert isinstance(pe.pe, nn.Parameter) and pe.pe.shape == (20, 6) and pe.pe.requires_grad
    assert 0.01 < pe.pe.std() < 0.03
    x = torch.randn(2, 5, 6)
    pe(x).sum().backward()
    assert (pe.pe.grad[:5] == 2).all() and (pe.pe.grad[5:] == 0).all()


def test_positional_encoding_validates():
    with pytest.raises(ValueError, match="'sinusoidal', 'learned'"):
        PositionalEncoding(6, kind="rotary")
    with pytest.raises(ValueError, match="max_len"):
        PositionalEncoding(6, max_len=4)(torch.randn(1, 5, 6))


def test_time_embedding_matches_ddpm_reference():
    t = torch.tensor([0, 1, 10, 999])
    emb = TimeEmbedding(dim=16)(t)
    assert emb.shape == (4, 16)
    torch.testing.assert_close(emb, _ddpm_reference(t, 16))
    torch.testing.assert_close(TimeEmbedding(dim=16)(t.float()), emb)
    assert list(TimeEmbedding(dim=16).parameters()) == []
    assert TimeEmbedding(dim=7)(t).shape == (4, 7)


def test_one_hot_matches_torch():
    labels = torch.tensor([0, 3, 1, 4, 4])
    out = OneHot(classes=5)(labels)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.one_hot(labels, 5).float())
