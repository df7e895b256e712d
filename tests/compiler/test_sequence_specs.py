"""The sequence specs (rnn/lstm/gru classifiers, rnn_lm, seq2seq, seq2seq_attn, transformer), each
against a hand-written torch reference loaded with the spec's weights (strict, by name)."""

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

PAD, UNK, SOS, EOS = 0, 1, 2, 3
TOL = dict(atol=1e-5, rtol=1e-5)


def spec(name: str) -> str:
    return str(SPECS_DIR / f"{name}.yaml")


def part(state: dict, prefix: str, new: str = "") -> dict:
    return {new + k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def padded_batch(vocab: int, lengths: list[int], generator: torch.Generator, low: int = 4) -> torch.Tensor:
    """Token ids [B, max(lengths)]: random real tokens (never PAD), PAD after each length."""
    tokens = torch.randint(low, vocab, (len(lengths), max(lengths)), generator=generator)
    for row, n in enumerate(lengths):
        tokens[row, n:] = PAD
    return tokens


# ---- rnn / lstm / gru classifiers -----------------------------------------------------------

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RefClassifier(nn.Module):
    """embedding(padding_idx) -> packed torch recurrent layer -> top layer's h_n -> linear."""

    def __init__(self, cell: str, vocab: int, embed: int, hidden: int, classes: int, layers: int,
                 bidirectional: bool):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=PAD)
        self.rnn = CELLS[cell](embed, hidden, num_layers=layers, batch_first=True,
                               bidirectional=bidirectional)
        self.fc = nn.Linear(hidden * (2 if bidirectional else 1), classes)
        self.dirs = 2 if bidirectional else 1

    def forward(self, tokens):
        lengths = (tokens != PAD).sum(1)
        seq = pack_padded_sequence(self.embed(tokens), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.rnn(seq)
        h = h[0] if isinstance(h, tuple) else h  # the LSTM's (h_n, c_n)
        top = h.view(self.rnn.num_layers, self.dirs, tokens.shape[0], -1)[-1]  # [dirs, B, H]
        return self.fc(torch.cat(list(top), dim=-1))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_classifier_matches_torch(cell, layers, bidirectional):
    params = dict(vocab=30, embed=8, hidden=12, classes=3, layers=layers, bidirectional=bidirectional)
    # lstm.yaml and gru.yaml for their cells; rnn.yaml with `cell:` for the Elman one
    model = build(spec(cell), **params) if cell != "rnn" else build(spec("rnn"), cell="rnn", **params)
    model.eval()
    ref = RefClassifier(cell, 30, 8, 12, 3, layers, bidirectional).eval()
    ref.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():  # a nonzero PAD row: padding that leaks into the state would show
        model.embed.weight[PAD].normal_()
        ref.embed.weight[PAD].copy_(model.embed.weight[PAD])

    g = torch.Generator().manual_seed(1)
    tokens = padded_batch(30, [7, 3, 5, 1, 6], g)
    with torch.no_grad():
        logits = model(tokens)
        expected = ref(tokens)
        assert logits.shape == (5, 3)
        torch.testing.assert_close(logits, expected, **TOL)

        # PAD appended to every sentence changes no logit
        more = torch.cat([tokens, torch.full((5, 4), PAD)], dim=1)
        torch.testing.assert_close(model(more), logits, **TOL)
        # a sentence alone, unpadded, has the logits it has in the padded batch
        for row in range(5):
            n = int((tokens[row] != PAD).sum())
            torch.testing.assert_close(model(tokens[row:row + 1, :n])[0], logits[row], **TOL)
        # and the padding matters: an unpacked run (PAD read as steps) gives other logits
        h = ref.rnn(ref.embed(more))[1]
        h = h[0] if cell == "lstm" else h
        top = h.view(layers, ref.dirs, 5, -1)[-1]
        unpacked = ref.fc(torch.cat(list(top), dim=-1))
        assert not torch.allclose(unpacked, logits, atol=1e-3)


# ---- rnn_lm: tied embedding and output projection -------------------------------------------

class RefLM(nn.Module):
    def __init__(self, vocab: int, size: int, layers: int, tied: bool = True):
        super().__init__()
        self.embed = nn.Embedding(vocab, size, padding_idx=PAD)
        self.rnn = nn.LSTM(size, size, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(size, vocab)
        if tied:
            self.fc.weight = self.embed.weight

    def forward(self, tokens):
        return self.fc(self.rnn(self.embed(tokens))[0])


def test_rnn_lm_matches_torch_and_ties_its_projection():
    model = build(spec("rnn_lm"), vocab=20, size=8, layers=2).eval()
    assert model.fc.weight is model.embed.weight  # one Parameter, not a copy
    assert model.fc.weight.data_ptr() == model.embed.weight.data_ptr()
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in RefLM(20, 8, 2).parameters())  # counted once

    ref = RefLM(20, 8, 2).eval()
    ref.load_state_dict(model.state_dict(), strict=True)
    g = torch.Generator().manual_seed(2)
    tokens = padded_batch(20, [9, 6, 9, 2], g)
    logits = model(tokens)
    expected = ref(tokens)
    assert logits.shape == (4, 9, 20)
    torch.testing.assert_close(logits, expected, **TOL)
    torch.testing.assert_close(logits, F.linear(ref.rnn(ref.embed(tokens))[0], model.embed.weight,
                                                model.fc.bias), **TOL)

    # the gradient of the tied weight has both uses: the lookup and the projection
    probe = torch.randn(logits.shape, generator=g)
    (logits * probe).sum().backward()
    (expected * probe).sum().backward()
    grad = model.embed.weight.grad
    assert model.fc.weight.grad is grad
    torch.testing.assert_close(grad, ref.embed.weight.grad, **TOL)

    untied = RefLM(20, 8, 2, tied=False).eval()
    untied.load_state_dict(ref.state_dict(), strict=True)
    (untied(tokens) * probe).sum().backward()
    lookup, projection = untied.embed.weight.grad, untied.fc.weight.grad
    assert lookup.abs().sum() > 0 and projection.abs().sum() > 0
    torch.testing.assert_close(grad, lookup + projection, **TOL)
    assert not torch.allclose(grad, projection, atol=1e-4)


# ---- transformer ----------------------------------------------------------------------------

def sinusoids(length: int, dim: int) -> torch.Tensor:
    """pe[pos, 2i] = sin(pos / 10000^(2i/d)), pe[pos, 2i+1] = cos(pos / 10000^(2i/d))."""
    pe = torch.zeros(length, dim, dtype=torch.float64)
    for pos in range(length):
        for i in range(0, dim, 2):
            angle = pos / 10000 ** (i / dim)
            pe[pos, i] = math.sin(angle)
            if i + 1 < dim:
                pe[pos, i + 1] = math.cos(angle)
    return pe.float()


SMALL = dict(src_vocab=25, tgt_vocab=27, d_model=16, heads=2, ffn=32, layers=2)


def reference_transformer(model, norm_first: bool, src, tgt):
    """Logits [B, T, V] of torch's TransformerEncoder/Decoder with the spec's weights."""
    d, sd = SMALL["d_model"], model.state_dict()
    kw = dict(d_model=d, nhead=SMALL["heads"], dim_feedforward=SMALL["ffn"], dropout=0.1,
              batch_first=True, norm_first=norm_first)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**kw), SMALL["layers"],
                                    enable_nested_tensor=False).eval()
    decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**kw), SMALL["layers"]).eval()
    encoder.load_state_dict(part(sd, "encoder.layers.", "layers."), strict=True)
    decoder.load_state_dict(part(sd, "decoder.layers.", "layers."), strict=True)

    def embed(weight, ids):
        return F.embedding(ids, weight) * math.sqrt(d) + sinusoids(ids.shape[1], d)

    def final_norm(x, side):
        return F.layer_norm(x, (d,), sd[f"{side}.norm.weight"], sd[f"{side}.norm.bias"]) if norm_first else x

    src_pad = src == PAD
    memory = final_norm(encoder(embed(sd["encoder.embed.weight"], src), src_key_padding_mask=src_pad),
                        "encoder")
    t = tgt.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool).triu(1)
    x = decoder(embed(sd["decoder.embed.weight"], tgt), memory, tgt_mask=causal,
                memory_key_padding_mask=src_pad)
    return F.linear(final_norm(x, "decoder"), sd["decoder.embed.weight"])


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_matches_torch(norm_first):
    model = build(spec("transformer"), norm_first=norm_first, **SMALL).eval()
    enc, dec = model["encoder"], model["decoder"]
    assert dec.fc.weight is dec.embed.weight and dec.fc.bias is None
    assert (hasattr(enc, "norm") and hasattr(dec, "norm")) == norm_first
    with torch.no_grad():  # layer norms away from their identity init
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5) if name.endswith("weight") else p.uniform_(-0.5, 0.5)

    g = torch.Generator().manual_seed(3)
    src = padded_batch(25, [6, 3, 5], g)
    tgt = padded_batch(27, [4, 7, 2], g)
    tgt[:, 0] = SOS
    memory = enc(src)
    logits = dec(tgt, memory, src)
    expected = reference_transformer(model, norm_first, src, tgt)
    assert logits.shape == (3, 7, 27)
    real = tgt != PAD
    torch.testing.assert_close(logits[real], expected[real], **TOL)

    # the spec's own table is the closed form too
    assert torch.allclose(enc.position.pe[:10], sinusoids(10, 16), atol=1e-6)


# ---- seq2seq_attn / seq2seq -----------------------------------------------------------------

S2S = dict(src_vocab=20, tgt_vocab=22, embed=8, hidden=12, layers=2)


def test_seq2seq_attn_decoder_step_by_hand():
    model = build(spec("seq2seq_attn"), **S2S).eval()
    enc, dec = model["encoder"], model["decoder"]
    g = torch.Generator().manual_seed(4)
    src = padded_batch(20, [5, 2, 4], g)
    token = torch.tensor([SOS, 7, 12])
    hidden = torch.randn(2, 3, 12, generator=g)
    with torch.no_grad():
        out = enc(src)
        memory, keys = out["memory"], out["keys"]
        torch.testing.assert_close(keys, F.linear(memory, enc.keys.weight, enc.keys.bias), **TOL)
        got = dec(token, hidden, memory, keys, src)

        emb = dec.embed.weight[token]  # dropout: identity in eval mode
        query = hidden[-1]  # the top layer's previous state
        energy = torch.tanh((query @ dec.attention.query.weight.T)[:, None, :] + keys)
        scores = (energy @ dec.attention.score.weight[0]).masked_fill(src == PAD, -math.inf)
        weights = torch.softmax(scores, dim=-1)
        context = (weights[:, :, None] * memory).sum(1)
        gru = nn.GRU(8 + 12, 12, num_layers=2, batch_first=True).eval()
        gru.load_state_dict(part(model.state_dict(), "decoder.rnn."), strict=True)
        step_out, new_hidden = gru(torch.cat([emb, context], -1)[:, None, :], hidden)
        logits = F.linear(step_out[:, 0], dec.fc.weight, dec.fc.bias)

    assert set(got) == {"logits", "hidden", "weights"}
    torch.testing.assert_close(got["weights"], weights, **TOL)
    assert bool((got["weights"][src == PAD] == 0).all())
    torch.testing.assert_close(got["weights"].sum(-1), torch.ones(3), **TOL)
    torch.testing.assert_close(got["hidden"], new_hidden, **TOL)
    torch.testing.assert_close(got["logits"], logits, **TOL)


def test_seq2seq_decoder_starts_from_the_encoder_state():
    shaped = analyze(spec("seq2seq"), S2S)
    model = build(spec("seq2seq"), **S2S).eval()
    translator = make_translator(model, shaped, spec("seq2seq"))
    g = torch.Generator().manual_seed(5)
    src = padded_batch(20, [5, 2, 4], g)
    with torch.no_grad():
        context = translator.encode(src)
        state = translator.start(context)
        hidden = model["encoder"](src)["hidden"]
        # the encoder's final state is its packed GRU's h_n (the last *real* step's)
        gru = nn.GRU(8, 12, num_layers=2, batch_first=True).eval()
        gru.load_state_dict(part(model.state_dict(), "encoder.rnn."), strict=True)
        seq = pack_padded_sequence(model["encoder"].embed(src), (src != PAD).sum(1), batch_first=True,
                                   enforce_sorted=False)
        h_n = gru(seq)[1]
    assert set(state) == {"hidden"}
    assert state["hidden"].shape == (2, 3, 12)
    torch.testing.assert_close(state["hidden"], hidden, **TOL)
    torch.testing.assert_close(state["hidden"], h_n, **TOL)


# ---- parameter counts -----------------------------------------------------------------------

def transformer_parameters(src_vocab, tgt_vocab, d, ffn, layers, norm_first) -> int:
    attention = 4 * d * d + 4 * d  # q, k, v, out projections with biases
    feed_forward = 2 * d * ffn + ffn + d
    encoder_layer = attention + feed_forward + 2 * 2 * d  # two layer norms
    decoder_layer = 2 * attention + feed_forward + 3 * 2 * d  # self + cross attention, three norms
    embeddings = src_vocab * d + tgt_vocab * d  # the output projection is the decoder embedding
    final_norms = 2 * 2 * d if norm_first else 0
    return layers * (encoder_layer + decoder_layer) + embeddings + final_norms


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # a tied parameter counted once


def test_transformer_base_parameter_count():
    model = build(spec("transformer"))
    assert count(model) == transformer_parameters(8000, 6000, 512, 2048, 6, False) == 51_306_496


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_small_parameter_count(norm_first):
    model = build(spec("transformer"), norm_first=norm_first, **SMALL)
    assert count(model) == transformer_parameters(25, 27, 16, 32, 2, norm_first)
