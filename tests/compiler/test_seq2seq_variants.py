"""seq2seq and seq2seq_attn with `cell: lstm` and `bidirectional: true`, each network against
hand-written torch (nn.LSTM / nn.GRU loaded strictly with the spec's weights), and the defaults
(gru, one direction) against the modules the specs built before the two params existed."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from engine.compiler import analyze, build
from engine.compiler.merge import SPECS_DIR
from engine.train.evaluation.translator import make_translator

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest

PAD, SOS = 0, 2
E, H, L = 8, 12, 2
SIZES = dict(src_vocab=20, tgt_vocab=22, embed=E, hidden=H, layers=L)
TIGHT = dict(rtol=1e-6, atol=1e-12)  # float64 throughout: the same ops give the same numbers


def spec(name: str) -> str:
    return str(SPECS_DIR / f"{name}.yaml")


def part(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def source(g: torch.Generator) -> torch.Tensor:
    """Token ids [3, 5], padded after 5, 2 and 4 real tokens."""
    tokens = torch.randint(4, 20, (3, 5), generator=g)
    for row, n in enumerate([5, 2, 4]):
        tokens[row, n:] = PAD
    return tokens


def model_for(name: str, **params) -> nn.Module:
    torch.manual_seed(0)
    model = build(spec(name), **SIZES, **params).double().eval()
    with torch.no_grad():  # biases away from their init, so that a swapped one would show
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def oracle_encoder(model: nn.Module, src: torch.Tensor, kind: type, prefix: str):
    """(out, state) of a hand-made bidirectional torch layer with the encoder's weights, on the
    packed source: state is h_n, or (h_n, c_n) for an LSTM."""
    rnn = kind(E, H, num_layers=L, batch_first=True, bidirectional=True).double().eval()
    rnn.load_state_dict(part(model.state_dict(), prefix), strict=True)
    seq = pack_padded_sequence(model["encoder"].embed(src), (src != PAD).sum(1), batch_first=True,
                               enforce_sorted=False)
    out, state = rnn(seq)
    out = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])[0]
    return out, state


def bridged(state: torch.Tensor, fc: nn.Module, squash: bool) -> torch.Tensor:
    """Each layer's forward and backward rows [2L, B, H] side by side, through the bridge."""
    layers = [torch.cat([state[2 * layer], state[2 * layer + 1]], dim=-1) for layer in range(L)]
    out = F.linear(torch.stack(layers), fc.weight, fc.bias)
    return torch.tanh(out) if squash else out


# ---- the defaults are today's modules --------------------------------------------------------

DEFAULT_KEYS = [
    "encoder.embed.weight",
    *[f"encoder.rnn.{w}_l{k}" for k in range(L) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")],
    "decoder.embed.weight",
    *[f"decoder.rnn.{w}_l{k}" for k in range(L) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")],
    "decoder.fc.weight", "decoder.fc.bias",
]


@pytest.mark.parametrize("name", ["seq2seq", "seq2seq_attn"])
def test_defaults_build_the_gru_modules_and_keys_as_before(name):
    model = build(spec(name), **SIZES)
    default = build(spec(name), **SIZES, cell="gru", bidirectional=False)
    keys = list(model.state_dict())
    assert keys == list(default.state_dict())
    if name == "seq2seq":
        assert keys == DEFAULT_KEYS
    else:  # the attention adds the keys' projection and its own two weights, nothing else
        extra = {"encoder.keys.weight", "encoder.keys.bias", "decoder.attention.query.weight",
                 "decoder.attention.score.weight"}
        assert set(keys) == set(DEFAULT_KEYS) | extra
    enc, dec = model["encoder"], model["decoder"]
    assert isinstance(enc.rnn, nn.GRU) and isinstance(dec.rnn, nn.GRU)  # the fused GRUs themselves
    assert not enc.rnn.bidirectional
    assert [n for n, _ in enc.named_children()] == ["mask", "embed", "drop", "rnn", *(
        ["keys"] if name == "seq2seq_attn" else [])]
    shaped = analyze(spec(name), SIZES)
    assert shaped.inputs["decoder"]["hidden"].shape[0] == L


# ---- the encoder: a bidirectional LSTM against torch's ---------------------------------------

@pytest.mark.parametrize("name", ["seq2seq", "seq2seq_attn"])
def test_bidirectional_lstm_encoder_against_torch(name):
    model = model_for(name, cell="lstm", bidirectional=True)
    enc = model["encoder"]
    src = source(torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = enc(src)
        out, (h_n, c_n) = oracle_encoder(model, src, nn.LSTM, "encoder.rnn.lstm.")
        h0 = bridged(h_n, enc.rnn.bridge.fc, squash=True)
        c0 = bridged(c_n, enc.rnn.bridge_cell.fc, squash=False)
    assert got["memory"].shape == (3, 5, 2 * H)  # both directions side by side
    torch.testing.assert_close(got["memory"], out, **TIGHT)
    assert bool((got["memory"][src == PAD] == 0).all())  # padding never enters
    # the state the decoder starts from: [c; h], each layer's two directions bridged
    assert got["hidden"].shape == (2 * L, 3, H)
    torch.testing.assert_close(got["hidden"], torch.cat([c0, h0]), **TIGHT)
    if name == "seq2seq_attn":
        torch.testing.assert_close(got["keys"], F.linear(out, enc.keys.weight, enc.keys.bias), **TIGHT)


def test_bidirectional_gru_encoder_against_torch():
    model = model_for("seq2seq", cell="gru", bidirectional=True)
    enc = model["encoder"]
    src = source(torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = enc(src)
        out, h_n = oracle_encoder(model, src, nn.GRU, "encoder.rnn.")
    torch.testing.assert_close(got["memory"], out, **TIGHT)
    torch.testing.assert_close(got["hidden"], bridged(h_n, enc.bridge.fc, squash=True), **TIGHT)


def test_unidirectional_lstm_state_is_c_above_h():
    model = model_for("seq2seq", cell="lstm")
    src = source(torch.Generator().manual_seed(3))
    lstm = nn.LSTM(E, H, num_layers=L, batch_first=True).double().eval()
    lstm.load_state_dict(part(model.state_dict(), "encoder.rnn.lstm."), strict=True)
    with torch.no_grad():
        got = model["encoder"](src)
        seq = pack_padded_sequence(model["encoder"].embed(src), (src != PAD).sum(1), batch_first=True,
                                   enforce_sorted=False)
        h_n, c_n = lstm(seq)[1]
    assert not any("bridge" in k for k in model.state_dict())  # one direction: nothing to bridge
    torch.testing.assert_close(got["hidden"], torch.cat([c_n, h_n]), **TIGHT)


# ---- the decoder receives the combined state -------------------------------------------------

def test_lstm_decoder_starts_from_the_bridged_state():
    model = model_for("seq2seq", cell="lstm", bidirectional=True)
    translator = make_translator(model, analyze(spec("seq2seq"), {**SIZES, "cell": "lstm",
                                                                  "bidirectional": True}),
                                 spec("seq2seq"))
    dec = model["decoder"]
    src = source(torch.Generator().manual_seed(4))
    token = torch.tensor([[SOS], [7], [12]])
    with torch.no_grad():
        context = translator.encode(src)
        state = translator.start(context)
        logits, new_state = translator.step(token, context, state)

        c0, h0 = state["hidden"].chunk(2)  # what the encoder handed over
        lstm = nn.LSTM(E, H, num_layers=L, batch_first=True).double().eval()
        lstm.load_state_dict(part(model.state_dict(), "decoder.rnn.lstm."), strict=True)
        step = torch.relu(dec.embed.weight[token[:, 0]])[:, None, :]  # dropout: identity in eval
        step_out, (h1, c1) = lstm(step, (h0, c0))
        expected = F.linear(step_out[:, 0], dec.fc.weight, dec.fc.bias)
    assert translator.state_names == ["hidden"]
    torch.testing.assert_close(state["hidden"], context["hidden"], **TIGHT)
    torch.testing.assert_close(logits, expected, **TIGHT)
    torch.testing.assert_close(new_state["hidden"], torch.cat([c1, h1]), **TIGHT)


def test_attention_decoder_with_lstm_and_both_directions_by_hand():
    model = model_for("seq2seq_attn", cell="lstm", bidirectional=True)
    enc, dec = model["encoder"], model["decoder"]
    src = source(torch.Generator().manual_seed(5))
    token = torch.tensor([SOS, 7, 12])
    with torch.no_grad():
        out = enc(src)
        memory, keys, hidden = out["memory"], out["keys"], out["hidden"]
        got = dec(token, hidden, memory, keys, src)

        c0, h0 = hidden.chunk(2)
        query = h0[-1]  # the top layer's h, not its c
        energy = torch.tanh((query @ dec.attention.query.weight.T)[:, None, :] + keys)
        scores = (energy @ dec.attention.score.weight[0]).masked_fill(src == PAD, -math.inf)
        weights = torch.softmax(scores, dim=-1)
        context = (weights[:, :, None] * memory).sum(1)  # [B, 2H]: both directions
        lstm = nn.LSTM(E + 2 * H, H, num_layers=L, batch_first=True).double().eval()
        lstm.load_state_dict(part(model.state_dict(), "decoder.rnn.lstm."), strict=True)
        step_out, (h1, c1) = lstm(torch.cat([dec.embed.weight[token], context], -1)[:, None, :], (h0, c0))
        logits = F.linear(step_out[:, 0], dec.fc.weight, dec.fc.bias)
    torch.testing.assert_close(got["weights"], weights, **TIGHT)
    torch.testing.assert_close(got["logits"], logits, **TIGHT)
    torch.testing.assert_close(got["hidden"], torch.cat([c1, h1]), **TIGHT)


@pytest.mark.parametrize("name", ["seq2seq", "seq2seq_attn"])
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_every_variant_decodes_with_beams(name, cell, bidirectional):
    """Beam search reorders the carried state along its batch dim: [2L, B, H] for an LSTM."""
    params = {**SIZES, "cell": cell, "bidirectional": bidirectional}
    torch.manual_seed(0)
    model = build(spec(name), **params).eval()
    translator = make_translator(model, analyze(spec(name), params), spec(name))
    src = source(torch.Generator().manual_seed(6))
    context = translator.encode(src)
    state = translator.start(context)
    rows = 2 * L if cell == "lstm" else L
    assert state["hidden"].shape == (rows, 3, H)
    picked = translator.select(state, torch.tensor([2, 0]))
    torch.testing.assert_close(picked["hidden"], state["hidden"][:, [2, 0]])
    logits, after = translator.step(src.new_full((3, 1), SOS), context, state)
    assert logits.shape == (3, 22) and after["hidden"].shape == state["hidden"].shape


# ---- parameter counts from the layer sizes ---------------------------------------------------

def recurrent_parameters(gates: int, inputs: int, hidden: int, layers: int, dirs: int) -> int:
    """torch's fused layer: per layer and direction W_ih, W_hh and two biases."""
    total, width = 0, inputs
    for _ in range(layers):
        total += dirs * gates * hidden * (width + hidden + 2)
        width = dirs * hidden
    return total


@pytest.mark.parametrize("name", ["seq2seq", "seq2seq_attn"])
def test_lstm_bidirectional_parameter_count(name):
    model = build(spec(name), **SIZES, cell="lstm", bidirectional=True)
    embeddings = 20 * E + 22 * E
    encoder = recurrent_parameters(4, E, H, L, 2) + 2 * (2 * H * H + H)  # two bridges (h and c)
    step_in = E + (2 * H if name == "seq2seq_attn" else 0)  # the context is both directions wide
    decoder = recurrent_parameters(4, step_in, H, L, 1) + H * 22 + 22
    attention = (2 * H * H + H) + H * H + H if name == "seq2seq_attn" else 0  # keys U, W, v
    assert sum(p.numel() for p in model.parameters()) == embeddings + encoder + decoder + attention
