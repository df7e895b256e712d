"""Corpus BLEU through sacrebleu, on detokenised text (one reference per sentence).

`corpus_bleu(hypotheses, references)` is `sacrebleu.corpus_bleu(hypotheses, [references]).score`
with sacrebleu's defaults: its own 13a tokenisation of the detokenised strings, exponential
smoothing, BLEU-4 with uniform weights and the corpus brevity penalty, on a 0-100 scale.
`tokenize="none"` splits on whitespace only (for text that is already tokenised: the result is
then the textbook BLEU of those tokens). Report figures with `bleu_signature()`.
"""

from __future__ import annotations

from collections.abc import Sequence


def _metric(tokenize: str = "13a"):
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize=tokenize)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> float:
    """BLEU (0-100) of `hypotheses` against one reference each, as sacrebleu computes it."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    return float(_metric(tokenize).corpus_score(list(hypotheses), [list(references)]).score)


def bleu_signature(tokenize: str = "13a") -> str:
    """sacrebleu's signature of the settings, e.g. `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|...`."""
    metric = _metric(tokenize)
    metric.corpus_score(["a"], [["a"]])  # sacrebleu fills in the number of references when scoring
    return str(metric.get_signature())
