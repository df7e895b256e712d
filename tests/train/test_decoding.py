"""Greedy and beam search (engine/train/evaluation/decoding.py) on small random translators and on stub
translators whose scores are a fixed table of the prefix, so the right answer is known."""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch
from torch import Tensor

from engine.compiler import analyze, build
from engine.compiler.merge import SPECS_DIR
from engine.train.evaluation.decoding import beam_decode, greedy_decode, length_penalty
from engine.train.evaluation.translator import make_translator

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest

PAD, UNK, SOS, EOS = 0, 1, 2, 3
SRC_VOCAB, TGT_VOCAB, MAX_LEN = 20, 10, 12
PARAMS = {
    "seq2seq_attn": dict(src_vocab=SRC_VOCAB, tgt_vocab=TGT_VOCAB, embed=8, hidden=12, layers=2),
    "transformer": dict(src_vocab=SRC_VOCAB, tgt_vocab=TGT_VOCAB, d_model=16, heads=2, ffn=32, layers=2),
}
LENGTHS = [7, 3, 5, 1, 6, 4]


def translator(name: str, seed: int, eos_bias: float = 0.0):
    """A randomly initialised small translator whose EOS logit is shifted by `eos_bias` (and
    nothing else changes): -30 never ends, larger values end sooner."""
    model = copy.deepcopy(_model(name, seed))
    with torch.no_grad():
        dec = model["decoder"]
        if name == "seq2seq_attn":
            dec.fc.bias[EOS] += eos_bias
        else:
            # logits = LN(x) . E[v] (tied, no bias): make every other row orthogonal to E[EOS], then
            # the last layer norm's bias + b E[EOS] / |E[EOS]|^2 adds exactly b to the EOS logit
            table, e = dec.embed.weight, dec.embed.weight[EOS].clone()
            others = [v for v in range(TGT_VOCAB) if v != EOS]
            table[others] -= (table[others] @ e)[:, None] * e / (e @ e)
            dec.get_submodule(f"layers.{PARAMS[name]['layers'] - 1}").norm3.bias += eos_bias * e / (e @ e)
    return make_translator(model, _shaped(name), str(SPECS_DIR / f"{name}.yaml"))


@functools.cache
def _shaped(name: str):
    return analyze(SPECS_DIR / f"{name}.yaml", PARAMS[name])


@functools.cache
def _model(name: str, seed: int):
    """Built once per module run (building seq2seq_attn takes ~0.4 s); callers copy it."""
    torch.manual_seed(seed)
    return build(SPECS_DIR / f"{name}.yaml", **PARAMS[name]).eval()


def sources(seed: int) -> Tensor:
    g = torch.Generator().manual_seed(100 + seed)
    src = torch.randint(4, SRC_VOCAB, (len(LENGTHS), max(LENGTHS)), generator=g)
    for row, n in enumerate(LENGTHS):
        src[row, n:] = PAD
    return src


# ---- beam 1 is greedy -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["seq2seq_attn", "transformer"])
def test_beam_one_is_greedy(name):
    lengths = []
    for seed in range(3):
        for eos_bias in (-30.0, 0.0, 2.0):
            tr = translator(name, seed, eos_bias)
            src = sources(seed)
            greedy = greedy_decode(tr, src, SOS, EOS, MAX_LEN)
            beam = beam_decode(tr, src, SOS, EOS, MAX_LEN, beam=1)
            assert beam == greedy, (seed, eos_bias)
            assert all(EOS not in ids for ids in greedy)
            lengths += [len(ids) for ids in greedy]
            if eos_bias == -30.0:
                assert all(len(ids) == MAX_LEN for ids in greedy)
    # the cases cover sentences cut at max_len and sentences that end early (not at once)
    assert MAX_LEN in lengths and any(0 < n < MAX_LEN for n in lengths), lengths


# ---- stub translators -----------------------------------------------------------------------

class Stub:
    """The Translator interface with logits a function of the prefix only: `table(prefix)`
    gives {token: probability}; every other token gets probability ~e^-30."""

    sequence = False
    state_names: list[str] = []

    def __init__(self, table, vocab: int = 12):
        self.table, self.vocab = table, vocab

    def encode(self, src: Tensor) -> dict:
        return {"src": src}

    def start(self, context: dict) -> dict:
        return {}

    def logits(self, prefix: list[int]) -> Tensor:
        row = torch.full((self.vocab,), -30.0)
        for token, p in self.table(tuple(prefix)).items():
            row[token] = math.log(p)
        return row

    def step(self, prefix: Tensor, context: dict, state: dict) -> tuple[Tensor, dict]:
        return torch.stack([self.logits(row) for row in prefix.tolist()]), {}

    def select(self, tensors: dict, index: Tensor) -> dict:
        return {k: v.index_select(0, index) for k, v in tensors.items()}

    def score(self, ids: list[int]) -> float:
        """log P(ids + EOS) under the stub."""
        prefix, total = [SOS], 0.0
        for token in [*ids, EOS]:
            total += float(torch.log_softmax(self.logits(prefix), -1)[token])
            prefix.append(token)
        return total


A, B, C, D, E, F, G, H = range(4, 12)


def garden_path(prefix: tuple) -> dict:
    """A .6 / B .4; after A four near-even continuations, after B one of .9; then EOS."""
    after = {(SOS,): {A: 0.6, B: 0.4},
             (SOS, A): {C: 0.26, D: 0.25, E: 0.25, F: 0.24},
             (SOS, B): {G: 0.9, H: 0.1}}
    return after.get(prefix, {EOS: 1.0})


def test_beam_finds_what_greedy_misses():
    stub = Stub(garden_path)
    src = torch.tensor([[5, 6, 7]])
    greedy = greedy_decode(stub, src, SOS, EOS, MAX_LEN)
    beam = beam_decode(stub, src, SOS, EOS, MAX_LEN, beam=2, alpha=0.0)
    assert greedy == [[A, C]]
    assert beam == [[B, G]]
    assert stub.score([B, G]) == pytest.approx(math.log(0.4 * 0.9), abs=1e-6)
    assert stub.score([A, C]) == pytest.approx(math.log(0.6 * 0.26), abs=1e-6)
    assert stub.score(beam[0]) > stub.score(greedy[0])
    # alpha 0: no length penalty; beam 1 stays greedy; a batch of two finds it twice
    assert length_penalty(2, 0.0) == 1.0
    assert beam_decode(stub, src, SOS, EOS, MAX_LEN, beam=1, alpha=0.0) == greedy
    assert beam_decode(stub, src.repeat(2, 1), SOS, EOS, MAX_LEN, beam=2, alpha=0.0) == [[B, G]] * 2


def ends_at(k: int):
    """A sure EOS as the k-th generated token, a sure token 4 + t before it."""
    def table(prefix: tuple) -> dict:
        t = len(prefix)  # the step about to be taken (SOS is in the prefix)
        return {EOS: 1.0} if t == k else {4 + t % 8: 1.0}
    return table


def never_ends(prefix: tuple) -> dict:
    return {4 + len(prefix) % 8: 0.7, 4 + (len(prefix) + 1) % 8: 0.3}


@pytest.mark.parametrize("decode", [
    lambda tr, src, n: greedy_decode(tr, src, SOS, EOS, n),
    lambda tr, src, n: beam_decode(tr, src, SOS, EOS, n, beam=1),
    lambda tr, src, n: beam_decode(tr, src, SOS, EOS, n, beam=3),
    lambda tr, src, n: beam_decode(tr, src, SOS, EOS, n, beam=3, alpha=0.0),
], ids=["greedy", "beam1", "beam3", "beam3-alpha0"])
def test_stops_at_eos_and_at_max_len(decode):
    src = torch.tensor([[5, 6, 7], [8, 9, PAD]])
    for k in (1, 2, 5):
        out = decode(Stub(ends_at(k)), src, MAX_LEN)
        assert out == [[4 + t % 8 for t in range(1, k)]] * 2, k
        assert len(out[0]) == k - 1
    assert decode(Stub(ends_at(1)), src, MAX_LEN) == [[], []]  # an immediate EOS
    for limit in (1, 4, MAX_LEN):
        out = decode(Stub(never_ends), src, limit)
        assert out == [[4 + t % 8 for t in range(1, limit + 1)]] * 2, limit
    # EOS exactly at the limit: the limit does not cut it short
    assert decode(Stub(ends_at(5)), src, 4) == [[5, 6, 7, 8]] * 2
    assert decode(Stub(ends_at(5)), src, 5) == [[5, 6, 7, 8]] * 2


# ---- the sequence decoder: incremental = teacher forced ---------------------------------------

@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_step_equals_teacher_forcing(norm_first):
    file, params = str(SPECS_DIR / "transformer.yaml"), {**PARAMS["transformer"], "norm_first": norm_first}
    model = build(file, **params).eval()
    tr = make_translator(model, analyze(file, params), file)
    assert tr.sequence and tr.state_names == []
    src = sources(0)
    g = torch.Generator().manual_seed(7)
    prefix = torch.randint(4, TGT_VOCAB, (len(LENGTHS), 9), generator=g)
    prefix[:, 0] = SOS
    with torch.no_grad():
        context = tr.encode(src)
        state = tr.start(context)
        forced = tr.teacher_forced(prefix, context)
        assert forced.shape == (len(LENGTHS), 9, TGT_VOCAB)
        for t in range(9):
            logits, state = tr.step(prefix[:, :t + 1], context, state)
            torch.testing.assert_close(logits, forced[:, t], atol=1e-5, rtol=1e-5)
        # and a later token changes the later positions only (the check can fail)
        changed = prefix.clone()
        changed[:, 5] = (changed[:, 5] + 1 - 4) % (TGT_VOCAB - 4) + 4
        other = tr.teacher_forced(changed, context)
    torch.testing.assert_close(other[:, :5], forced[:, :5], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(other[:, 5:], forced[:, 5:], atol=1e-3)


# ---- batch independence ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["seq2seq_attn", "transformer"])
@pytest.mark.parametrize("beam", [0, 3], ids=["greedy", "beam3"])
def test_batch_equals_one_at_a_time(name, beam):
    def decode(tr, src):
        if beam:
            return beam_decode(tr, src, SOS, EOS, MAX_LEN, beam=beam)
        return greedy_decode(tr, src, SOS, EOS, MAX_LEN)

    lengths = []
    for seed, eos_bias in ((0, 0.0), (2, 0.0), (2, 2.0)):
        tr = translator(name, seed, eos_bias)
        src = sources(seed)
        batch = decode(tr, src)
        for row, n in enumerate(LENGTHS):  # alone, without the batch's padding
            assert decode(tr, src[row:row + 1, :n]) == [batch[row]], (seed, row)
        lengths += [len(ids) for ids in batch]
    assert len(set(lengths)) > 1, lengths  # not one degenerate output for every sentence
