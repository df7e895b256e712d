"""Sequence blocks against torch oracles: readable cells and loops vs torch's RNNs, fused
layers loaded from torch state_dicts (packed and not), transformer layers vs torch's, and the
attention, positional and mask blocks against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from blocks.recurrent import GRU, LSTM, RNN, GRUCell, LastState, LSTMCell, Recurrent, RNNCell
from blocks.sequence import (
    AdditiveAttention,
    DotAttention,
    PaddingMask,
    PositionalEncoding,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
)

D, H, B, T = 5, 7, 3, 6
TORCH_CELLS = {"rnn": (RNNCell, nn.RNNCell), "lstm": (LSTMCell, nn.LSTMCell),
               "gru": (GRUCell, nn.GRUCell)}
TORCH_LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _close(a, b, tol=1e-6):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


# ---------------------------------------------------------------- readable cells

@pytest.mark.parametrize("kind", TORCH_CELLS)
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch_outputs_and_gradients(kind, bias):
    torch.manual_seed(0)
    ours_cls, ref_cls = TORCH_CELLS[kind]
    ref = ref_cls(D, H, bias=bias).double()
    ours = ours_cls(D, H, bias=bias).double()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(B, D, dtype=torch.float64, requires_grad=True)
    h = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    c = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    lstm = kind == "lstm"
    got = ours(x, h, c) if lstm else (ours(x, h),)
    want = ref(x, (h, c)) if lstm else (ref(x, h),)
    for g, w in zip(got, want):
        _close(g, w)
    # a random cotangent for every output: gradients w.r.t. inputs, state and every weight
    cots = [torch.randn_like(w) for w in want]
    leaves = [x, h, c] if lstm else [x, h]
    g_ours = torch.autograd.grad(got, [*leaves, *ours.parameters()], cots)
    g_ref = torch.autograd.grad(want, [*leaves, *ref.parameters()], cots)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    for a, b in zip(g_ours, g_ref):
        _close(a, b)


@pytest.mark.parametrize("kind", TORCH_CELLS)
def test_cell_missing_state_is_zeros_and_init_is_torch_range(kind):
    torch.manual_seed(1)
    cell = TORCH_CELLS[kind][0](D, H)
    x = torch.randn(B, D)
    zeros = torch.zeros(B, H)
    if kind == "lstm":
        for a, b in zip(cell(x), cell(x, zeros, zeros)):
            _close(a, b)
    else:
        _close(cell(x), cell(x, zeros))
    bound = 1 / math.sqrt(H)
    for p in cell.parameters():
        assert p.abs().max() <= bound and p.std() > bound / 4  # uniform(-1/sqrt(H), 1/sqrt(H))
    assert cell.weight_ih.shape == (cell.gates * H, D) and cell.weight_hh.shape == (cell.gates * H, H)


# ---------------------------------------------------------------- readable loop

def _loop_and_torch(kind):
    block = Recurrent(D, H, cell=kind).double()
    ref = TORCH_LAYERS[kind](D, H, batch_first=True).double()
    ref.load_state_dict({f"{k}_l0": v for k, v in block.cell.state_dict().items()}, strict=True)
    return block, ref


@pytest.mark.parametrize("kind", TORCH_LAYERS)
def test_recurrent_loop_matches_torch_layer(kind):
    torch.manual_seed(2)
    block, ref = _loop_and_torch(kind)
    x = torch.randn(B, T, D, dtype=torch.float64)
    h0 = torch.randn(B, H, dtype=torch.float64)
    c0 = torch.randn(B, H, dtype=torch.float64)
    if kind == "lstm":
        out, h, c = block(x, h0, c0)
        want, (wh, wc) = ref(x, (h0[None], c0[None]))
        _close(c, wc[0])
    else:
        out, h = block(x, h0)
        want, wh = ref(x, h0[None])
    _close(out, want)
    _close(h, wh[0])
    assert out.shape == (B, T, H)


@pytest.mark.parametrize("kind", TORCH_LAYERS)
def test_recurrent_loop_mask_carries_state_through_padding(kind):
    torch.manual_seed(3)
    block, _ = _loop_and_torch(kind)
    lengths = [T, 2, 4]
    x = torch.randn(B, T, D, dtype=torch.float64)
    mask = torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]
    got = block(x, mask)
    for i, n in enumerate(lengths):
        alone = block(x[i:i + 1, :n])
        _close(got[0][i, :n], alone[0][0])
        assert (got[0][i, n:] == 0).all()
        for state, state_alone in zip(got[1:], alone[1:]):  # h (and c): after the last valid step
            _close(state[i], state_alone[0])


def test_recurrent_rejects_unknown_cell():
    with pytest.raises(ValueError, match="'lstm'"):
        Recurrent(D, H, cell="transformer")


# ---------------------------------------------------------------- fused layers

def _padded_batch(lengths, dtype=torch.float64):
    x = torch.randn(len(lengths), T, D, dtype=dtype)
    mask = torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]
    # garbage in the padding: must not leak into outputs or states
    x = x.masked_fill(mask[..., None], 1e3)
    return x, mask


def test_fused_lstm_loads_torch_state_dict_and_matches():
    torch.manual_seed(4)
    ref = nn.LSTM(D, H, num_layers=2, bidirectional=True, batch_first=True).double()
    block = LSTM(D, H, layers=2, bidirectional=True).double()
    block.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(B, T, D, dtype=torch.float64)
    h0, c0 = torch.randn(2, 4, B, H, dtype=torch.float64)
    out, h, c = block(x, h0, c0)
    want, (wh, wc) = ref(x, (h0, c0))
    _close(out, want)
    _close(h, wh)
    _close(c, wc)
    assert out.shape == (B, T, 2 * H) and h.shape == (4, B, H)


@pytest.mark.parametrize("kind,cls", [("lstm", LSTM), ("gru", GRU), ("rnn", RNN)])
def test_fused_packed_equals_each_sequence_alone(kind, cls):
    torch.manual_seed(5)
    block = cls(D, H, layers=2, bidirectional=True, packed=True).double().eval()
    ref = TORCH_LAYERS[kind](D, H, num_layers=2, bidirectional=True, batch_first=True).double()
    ref.load_state_dict(block.state_dict(), strict=True)
    lengths = [T, 2, 4, 1]
    x, mask = _padded_batch(lengths)
    got = block(x, mask)
    out, states = got[0], got[1:]
    for i, n in enumerate(lengths):
        want, wstate = ref(x[i:i + 1, :n])
        wstates = wstate if kind == "lstm" else (wstate,)
        _close(out[i, :n], want[0])
        assert (out[i, n:] == 0).all()
        for s, w in zip(states, wstates):
            _close(s[:, i], w[:, 0])


def test_fused_unpacked_lets_padding_into_the_state():
    # the control for the packed test: without packing the padding does change the state
    torch.manual_seed(6)
    block = GRU(D, H).double()
    x, mask = _padded_batch([T, 2])
    _, h = block(x)
    _, h_alone = block(x[1:2, :2])
    assert not torch.allclose(h[:, 1], h_alone[:, 0])


def test_fused_packed_with_initial_state_and_meta():
    torch.manual_seed(7)
    block = LSTM(D, H, packed=True).double()
    ref = nn.LSTM(D, H, batch_first=True).double()
    ref.load_state_dict(block.state_dict())
    x, mask = _padded_batch([3, T])
    h0, c0 = torch.randn(2, 1, 2, H, dtype=torch.float64)
    out, h, c = block(x, mask, h0, c0)
    want, (wh, wc) = ref(x[:1, :3], (h0[:, :1], c0[:, :1]))
    _close(out[0, :3], want[0])
    _close(h[:, 0], wh[:, 0])
    _close(c[:, 0], wc[:, 0])
    with torch.device("meta"):
        meta = LSTM(D, H, layers=2, bidirectional=True, packed=True)
    shapes = [o.shape for o in meta(x.to("meta").float(), mask.to("meta"))]
    assert shapes == [(2, T, 2 * H), (4, 2, H), (4, 2, H)]


def test_fused_packed_needs_a_mask():
    with pytest.raises(ValueError, match="mask"):
        GRU(D, H, packed=True)(torch.randn(B, T, D))


def test_rnn_nonlinearity_is_checked_and_used():
    torch.manual_seed(8)
    block = RNN(D, H, nonlinearity="relu")
    ref = nn.RNN(D, H, nonlinearity="relu", batch_first=True)
    ref.load_state_dict(block.state_dict())
    x = torch.randn(B, T, D)
    _close(block(x)[0], ref(x)[0])
    with pytest.raises(ValueError, match="tanh"):
        RNN(D, H, nonlinearity="sigmoid")


# ---------------------------------------------------------------- last_state

def test_last_state_picks_top_layer():
    torch.manual_seed(9)
    h = torch.randn(4, B, H)
    _close(LastState()(h), h[-1])
    _close(LastState(bidirectional=True)(h), torch.cat([h[-2], h[-1]], dim=-1))
    # against a real bidirectional LSTM: the top layer's forward state is the output's last
    # step (first half), its backward state the output's first step (second half)
    lstm = LSTM(D, H, layers=2, bidirectional=True)
    out, h, _ = lstm(torch.randn(B, T, D))
    vec = LastState(bidirectional=True)(h)
    _close(vec[:, :H], out[:, -1, :H])
    _close(vec[:, H:], out[:, 0, H:])


# ---------------------------------------------------------------- transformer layers

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


# ---------------------------------------------------------------- attention

def _keys_and_mask():
    torch.manual_seed(12)
    q, keys = torch.randn(B, 6, dtype=torch.float64), torch.randn(B, 4, 5, dtype=torch.float64)
    mask = torch.arange(4)[None, :] >= torch.tensor([4, 2, 1])[:, None]
    return q, keys, mask


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


# ---------------------------------------------------------------- positions and masks

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


def test_padding_mask():
    tokens = torch.tensor([[5, 3, 0, 0], [1, 0, 2, 0]])
    assert PaddingMask()(tokens).tolist() == [[False, False, True, True], [False, True, False, True]]
    assert PaddingMask(pad=3)(tokens).tolist() == [[False, True, False, False], [False] * 4]
