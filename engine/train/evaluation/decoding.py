"""Decoding a translator's output: greedy and beam search, batched, with length limits.

Both return, for every source sentence, the generated ids without SOS and EOS. Decoding stops
at EOS or after `max_len` tokens, whichever comes first; a sentence cut by the limit is
returned as far as it got. Beam search with one beam is greedy decoding (a test checks it).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from engine.train.evaluation.translator import Translator


@torch.no_grad()
def greedy_decode(translator: Translator, src: Tensor, sos: int, eos: int, max_len: int,
                  banned: tuple[int, ...] = ()) -> list[list[int]]:
    """The most likely token at every step, for the whole batch at once; `banned` ids (padding,
    start of sentence) are never produced."""
    context = translator.encode(src)
    state = translator.start(context)
    prefix = torch.full((src.shape[0], 1), sos, dtype=torch.long, device=src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        logits, state = translator.step(prefix, context, state)
        token = _ban(logits, banned).argmax(-1).masked_fill(done, eos)  # finished rows only repeat EOS
        prefix = torch.cat([prefix, token[:, None]], dim=1)
        done |= token == eos
        if bool(done.all()):
            break
    return [_until_eos(row, eos) for row in prefix[:, 1:].tolist()]


def _ban(logits: Tensor, banned: tuple[int, ...]) -> Tensor:
    if not banned:
        return logits
    logits = logits.clone()
    logits[:, list(banned)] = -math.inf
    return logits


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's ((5 + |Y|) / 6) ** alpha (Wu et al., 2016): without it beams favour short outputs."""
    return ((5 + length) / 6) ** alpha


@torch.no_grad()
def beam_decode(translator: Translator, src: Tensor, sos: int, eos: int, max_len: int, beam: int,
                alpha: float = 0.6, banned: tuple[int, ...] = ()) -> list[list[int]]:
    """Beam search: `beam` hypotheses per sentence, ranked by log-probability / length penalty.

    Each step expands every live hypothesis, keeps the `beam` best continuations that do not
    end, and sets aside those among the `beam` best that end with EOS; a sentence is done once
    `beam` hypotheses have ended and none of the live ones scores better than they do (or none
    can go on). At `max_len` the live ones are ranked with the ended ones.
    """
    n, k = src.shape[0], beam
    context = translator.encode(src)
    rows = torch.arange(n, device=src.device).repeat_interleave(k)
    context = translator.select(context, rows)  # every beam of a sentence reads its source
    state = translator.start(context)
    prefix = torch.full((n * k, 1), sos, dtype=torch.long, device=src.device)
    scores = torch.full((n, k), -math.inf, device=src.device)
    scores[:, 0] = 0.0  # at the start the beams are identical: expand only the first
    ended: list[list[tuple[float, list[int]]]] = [[] for _ in range(n)]
    searching = [True] * n
    for t in range(1, max_len + 1):
        logits, state = translator.step(prefix, context, state)
        logp = torch.log_softmax(_ban(logits.float(), banned), dim=-1)
        vocab = logp.shape[-1]
        flat = (scores.reshape(-1, 1) + logp).view(n, k * vocab)
        top, index = flat.topk(min(2 * k, k * vocab), dim=1)
        keep, new_scores, tokens = _extend(top, index, vocab, k, eos, t, alpha, prefix, ended, searching)
        prefix = torch.cat([prefix[keep], tokens[:, None]], dim=1)
        state = translator.select(state, keep)
        scores = new_scores.to(src.device)
        if not any(searching):
            break
    for i in range(n):  # live hypotheses at the length limit compete with the ended ones
        for j in range(k):
            if scores[i, j] > -math.inf:
                ended[i].append((float(scores[i, j]) / length_penalty(prefix.shape[1] - 1, alpha),
                                 prefix[i * k + j, 1:].tolist()))
    return [_until_eos(max(hyps, key=lambda h: h[0])[1], eos) if hyps else [] for hyps in ended]


def _extend(top: Tensor, index: Tensor, vocab: int, k: int, eos: int, t: int, alpha: float,
            prefix: Tensor, ended: list, searching: list[bool]) -> tuple[Tensor, Tensor, Tensor]:
    """One step's bookkeeping: which rows live on (and with which token), which ended."""
    n = top.shape[0]
    keep = torch.arange(n * k).view(n, k) // k * k  # rows of finished sentences: any of theirs
    new_scores = torch.full((n, k), -math.inf)
    tokens = torch.full((n, k), eos, dtype=torch.long)
    for i, (row_scores, row_index) in enumerate(zip(top.tolist(), index.tolist())):
        if not searching[i]:
            continue
        alive = 0
        for rank, (score, flat) in enumerate(zip(row_scores, row_index)):
            if score == -math.inf or alive == k:
                break
            source, token = i * k + flat // vocab, flat % vocab
            if token == eos:
                # an ending counts only among the `beam` best candidates (as fairseq): the 2k
                # are drawn so that k can live on, not to fill the ended list with poor ones
                if rank < k:
                    ended[i].append((score / length_penalty(t, alpha), prefix[source, 1:].tolist()))
                continue
            keep[i, alive], new_scores[i, alive], tokens[i, alive] = source, score, token
            alive += 1
        searching[i] = alive > 0 and not _settled(ended[i], float(new_scores[i, 0]), k, t, alpha)
        if not searching[i]:
            new_scores[i] = -math.inf  # done: its live rows no longer compete
    return keep.view(-1).to(prefix.device), new_scores, tokens.view(-1).to(prefix.device)


def _settled(ended: list, best_alive: float, k: int, t: int, alpha: float) -> bool:
    """Whether a sentence is done: `k` hypotheses have ended and the worst of the best k already
    beats the best live one as it stands (the rule of Hugging Face's beam search; live scores
    only fall as they grow, though a longer length penalty can lift them a little)."""
    if len(ended) < k:
        return False
    worst_kept = sorted(ended, key=lambda h: h[0], reverse=True)[k - 1][0]
    return worst_kept >= best_alive / length_penalty(t, alpha)


def _until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[:ids.index(eos)] if eos in ids else ids
