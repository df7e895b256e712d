"""Recurrent blocks (blocks/recurrent.py) against torch oracles: readable cells and loops vs
torch's RNNs, fused layers loaded from torch state_dicts (packed and not), the final-state picker."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from engine.blocks.recurrent import GRU, LSTM, RNN, GRUCell, LastState, LSTMCell, Recurrent, RNNCell

D, H, B, T = 5, 7, 3, 6
TORCH_CELLS = {"rnn": (RNNCell, nn.RNNCell), "lstm": (LSTMCell, nn.LSTMCell),
               "gru": (GRUCell, nn.GRUCell)}
TORCH_LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _close(a, b, tol=1e-6):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def _loop_and_torch(kind):
    block = Recurrent(D, H, cell=kind).double()
    ref = TORCH_LAYERS[kind](D, H, batch_first=True).double()
    ref.load_state_dict({f"{k}_l0": v for k, v in block.cell.state_dict().items()}, strict=True)
    return block, ref


def _padded_batch(lengths, dtype=torch.float64):
    x = torch.randn(len(lengths), T, D, dtype=dtype)
    mask = torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]
    # garbage in the padding: must not leak into outputs or states
    x = x.masked_fill(mask[..., None], 1e3)
    return x, mask


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


@pytest.mark.parametrize("packed", [False, True])
def test_fused_lstm_under_cpu_bf16_autocast_runs_in_fp32(packed):
    """torch's own LSTM fails under CPU bf16 autocast where oneDNN lacks a bf16 LSTM ("could not
    create a primitive descriptor"); the block runs it in fp32 there: the fp32 result exactly."""
    torch.manual_seed(0)
    block = LSTM(D, H, layers=2, bidirectional=True, packed=packed).eval()
    x, mask = _padded_batch([6, 4, 2], dtype=torch.float32)
    inputs = (x, mask) if packed else (x,)
    want = block(*inputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = block(*inputs)
    for g, w in zip(got, want):
        assert g.dtype == torch.float32 and torch.equal(g, w)
