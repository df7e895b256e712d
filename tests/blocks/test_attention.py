"""The attention blocks (blocks/attention.py) against oracles: SAGAN's and DDPM's spatial
self-attention against reference computations, Bahdanau's and Luong's attention by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.blocks.attention import AdditiveAttention, DotAttention, SelfAttention2d
from engine.blocks.registry import lookup


def _block(name, **args):
    return lookup(name).cls(**args)


def _sagan_reference(block, x):
    # The SAGAN reference implementation's bmm formulation (Zhang et al., 2019).
    b, c, h, w = x.shape
    n = h * w
    proj_query = block.query(x).view(b, -1, n).permute(0, 2, 1)
    proj_key = block.key(x).view(b, -1, n)
    attention = torch.softmax(torch.bmm(proj_query, proj_key), dim=-1)
    proj_value = block.value(x).view(b, -1, n)
    out = torch.bmm(proj_value, attention.permute(0, 2, 1)).view(b, c, h, w)
    return block.gamma * out + x


D, H, B, T = 5, 7, 3, 6


def _close(a, b, tol=1e-6):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def _keys_and_mask():
    torch.manual_seed(12)
    q, keys = torch.randn(B, 6, dtype=torch.float64), torch.randn(B, 4, 5, dtype=torch.float64)
    mask = torch.arange(4)[None, :] >= torch.tensor([4, 2, 1])[:, None]
    return q, keys, mask


@pytest.mark.parametrize("spectral", [False, True])
def test_sagan_attention_identity_at_init_and_matches_reference(spectral):
    torch.manual_seed(0)
    x = torch.randn(2, 16, 3, 5)
    block = _block("sagan_attention", in_size=16, spectral_norm=spectral).eval()
    assert block.query.out_channels == 2 and block.value.out_channels == 16
    assert torch.equal(block(x), x)
    with torch.no_grad():
        block.gamma.fill_(1.0)
    torch.testing.assert_close(block(x), _sagan_reference(block, x))
    assert not torch.allclose(block(x), x)
    assert block.label() == "self-attention (SAGAN)"


def test_sagan_attention_small_channels_and_gradient_to_gamma():
    torch.manual_seed(0)
    block = _block("sagan_attention", in_size=4)  # 4 // 8 = 0 -> at least 1 channel
    assert block.query.out_channels == 1
    block(torch.randn(2, 4, 3, 3)).square().sum().backward()
    assert block.gamma.grad is not None and block.gamma.grad.abs().item() > 0


def test_sagan_attention_spectral_norm_and_reset():
    torch.manual_seed(0)
    block = _block("sagan_attention", in_size=8, reduction=2, spectral_norm=True)
    original = block.query.parametrizations.weight.original
    assert {"query.parametrizations.weight.original", "gamma"} <= {
        n for n, _ in block.named_parameters()}
    for _ in range(20):  # training-mode calls run the power iteration
        block(torch.randn(1, 8, 2, 2))
    sigma = torch.linalg.matrix_norm(block.query.weight.flatten(1), ord=2)
    torch.testing.assert_close(sigma, torch.tensor(1.0), atol=1e-3, rtol=0)
    with torch.no_grad():
        original.fill_(float("nan"))
        block.gamma.fill_(3.0)
    block.reset_parameters()
    assert torch.isfinite(original).all() and block.gamma.item() == 0
    assert torch.isfinite(block.query.parametrizations.weight[0]._u).all()


@pytest.mark.parametrize("heads,channels,groups", [(1, 8, 32), (2, 8, 4), (4, 12, 32)])
def test_self_attention2d_matches_einsum(heads, channels, groups):
    torch.manual_seed(0)
    block = SelfAttention2d(in_size=channels, heads=heads, groups=groups)
    b, h, w = 2, 3, 5
    x = torch.randn(b, channels, h, w)
    out = block(x)
    assert out.shape == x.shape
    g = block.norm.num_groups
    assert channels % g == 0 and g <= groups
    n = F.group_norm(x, g, block.norm.weight, block.norm.bias, block.norm.eps)
    qkv = torch.einsum("oc,bchw->bohw", block.qkv.weight[:, :, 0, 0], n) + block.qkv.bias[:, None, None]
    q, k, v = qkv.reshape(b, 3, heads, channels // heads, h * w).unbind(1)  # [B, heads, d, N]
    attn = torch.einsum("bhdn,bhdm->bhnm", q, k) / math.sqrt(channels // heads)
    attn = attn.softmax(-1)
    o = torch.einsum("bhnm,bhdm->bhdn", attn, v).reshape(b, channels, h, w)
    want = x + torch.einsum("oc,bchw->bohw", block.proj.weight[:, :, 0, 0], o) \
        + block.proj.bias[:, None, None]
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-5)
    assert block.label() == ("self-attention, 1 head" if heads == 1 else f"self-attention, {heads} heads")


def test_additive_attention_matches_hand_computation():
    q, keys, mask = _keys_and_mask()
    block = AdditiveAttention(6, in_sizes=[6, 5, 4], hidden=7).double()
    assert block.query.bias is None and block.key.bias is not None and block.score.bias is None
    context, weights = block(q, keys, mask)
    W, U, b, v = block.query.weight, block.key.weight, block.key.bias, block.score.weight[0]
    for i in range(B):
        scores = torch.stack([v @ torch.tanh(W @ q[i] + U @ keys[i, s] + b) for s in range(4)])
        scores[mask[i]] = float("-inf")
        w = torch.softmax(scores, 0)
        _close(weights[i], w)
        _close(context[i], (w[:, None] * keys[i]).sum(0))
    _close(weights.sum(-1), torch.ones(B, dtype=torch.float64))
    assert (weights[mask] == 0).all() and (weights[~mask] > 0).all()
    unmasked, w_all = block(q, keys)
    assert (w_all[mask] > 0).all()  # the control: without the mask those keys are attended


def test_additive_attention_with_keys_projected_once_equals_projecting_inside():
    q, keys, mask = _keys_and_mask()
    inside = AdditiveAttention(6, in_sizes=[6, keys.shape[-1], None], hidden=7).double()
    outside = AdditiveAttention(6, in_sizes=[6, 7, keys.shape[-1], None], hidden=7,
                                projected=True).double()
    assert outside.key is None
    outside.query.load_state_dict(inside.query.state_dict())
    outside.score.load_state_dict(inside.score.state_dict())
    context, weights = outside(q, inside.key(keys), keys, mask)
    want_context, want_weights = inside(q, keys, mask)
    _close(context, want_context)
    _close(weights, want_weights)
    assert (weights[mask] == 0).all()


@pytest.mark.parametrize("score", ["dot", "general"])
def test_dot_attention_matches_hand_computation(score):
    q, keys, mask = _keys_and_mask()
    if score == "dot":
        q = q[:, :5]
    block = DotAttention(q.shape[1], in_sizes=[q.shape[1], 5, 4], score=score).double()
    context, weights = block(q, keys, mask)
    for i in range(B):
        k = keys[i] if score == "dot" else keys[i] @ block.proj.weight.T  # [S, Dq]
        scores = k @ q[i]
        scores[mask[i]] = float("-inf")
        w = torch.softmax(scores, 0)
        _close(weights[i], w)
        _close(context[i], w @ keys[i])
    assert (weights[mask] == 0).all()
    _close(weights.sum(-1), torch.ones(B, dtype=torch.float64))


def test_dot_attention_checks_widths_and_score():
    with pytest.raises(ValueError, match="general"):
        DotAttention(6, in_sizes=[6, 5], score="dot")
    with pytest.raises(ValueError, match="'dot'"):
        DotAttention(6, in_sizes=[6, 5], score="cosine")
    assert DotAttention(6, in_sizes=[6, 5]).proj.weight.shape == (6, 5)
