"""`sequence_classify` and `language_model`: recurrent networks over token ids.

Text batches are padded with id 0 (`<pad>`, see engine/train/data/text.py); losses ignore it.
Token-level figures (a language model's loss and perplexity, a translator's) are averaged
over real tokens, not over sentences: `TokenFigures.aggregate` divides the summed
log-likelihood by the summed token count, so a long sentence weighs as its tokens do.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.train.procedures.base import Procedure
from engine.train.procedures.classify import Classify
from engine.train.registry import PROCEDURES

PAD = 0  # engine.train.data.text.PAD: every text dataset pads with id 0


@PROCEDURES.register("sequence_classify")
class SequenceClassify(Classify):
    """Token ids [B, T] in (padded with 0), class logits out: language ID, sentiment.

    The same step as `classify`; the spec reads the padding (a `padding_mask` node feeding a
    packed recurrent layer), so padding never reaches the sentence vector.
    """


def ignore_padding(loss: nn.Module) -> nn.Module:
    """A cross-entropy loss that skips `<pad>` targets (label smoothing and all else kept)."""
    if isinstance(loss, nn.CrossEntropyLoss):
        loss.ignore_index = PAD
    return loss


def token_figures(logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Per sentence: summed negative log-likelihood, correct argmax tokens and real tokens."""
    real = labels != PAD
    nll = F.cross_entropy(logits.float().transpose(1, 2), labels, reduction="none",
                          ignore_index=PAD)
    correct = (logits.argmax(-1) == labels) & real
    return {"nll": nll.sum(1), "correct": correct.sum(1).float(), "tokens": real.sum(1).float()}


class TokenFigures:
    """The step and `aggregate` of procedures scored token by token (padding ignored)."""

    def next_token_step(self, forward, labels: Tensor) -> dict[str, float]:
        """One optimizer step on the cross-entropy of `forward()`'s logits [B, T, V] against
        `labels` [B, T]; the accuracy is over real tokens."""
        with self.autocast():
            logits = forward()
            loss = self.loss(logits.float().flatten(0, 1), labels.flatten())
        self.optimize(loss)
        real = labels != PAD
        accuracy = ((logits.argmax(-1) == labels) & real).sum() / real.sum().clamp(min=1)
        return {"loss": loss.item(), "accuracy": accuracy.item()}

    def aggregate(self, sums: dict[str, float], count: int) -> dict[str, float]:
        tokens = max(sums.pop("tokens", 0.0), 1.0)
        loss = sums.pop("nll", 0.0) / tokens
        out = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)),
               "accuracy": sums.pop("correct", 0.0) / tokens}
        out.update({k: v / max(count, 1) for k, v in sums.items()})
        return out


@PROCEDURES.register("language_model")
class LanguageModel(TokenFigures, Procedure):
    """Next-word prediction: ids [B, T] (SOS ... EOS, padded) -> logits [B, T - 1, V].

    The network reads ids[:, :-1] and is scored on ids[:, 1:]; loss is the recipe's
    cross-entropy over real tokens. Evaluation reports `loss` (nats per token), `perplexity`
    (its exponential) and `accuracy` (next-token argmax). `eval.sample_metrics:
    [unigram_perplexity]` adds the baseline: a unigram model of the training tokens.
    """

    def setup(self, total_steps: int) -> None:
        super().setup(total_steps)
        self.loss = ignore_padding(self.loss)

    def train_step(self, ids: Tensor) -> dict[str, float]:
        return self.next_token_step(lambda: self.model(ids[:, :-1]), ids[:, 1:])

    @torch.no_grad()
    def eval_step(self, ids: Tensor, metrics: list[str]) -> dict[str, Tensor]:
        with self.autocast():
            logits = self.eval_model()(ids[:, :-1])
        return token_figures(logits, ids[:, 1:])

    def evaluate_samples(self, run, split: str, names: list[str], seed: int = 0):
        from engine.train.data.multi30k import unigram_perplexity
        from engine.train.evaluation.sampling import check_sample_metrics
        check_sample_metrics(run, names, {"unigram_perplexity"})
        baseline = unigram_perplexity(run.train_set, run.eval_sets[split] if split != "train"
                                      else run.train_set)
        return {"unigram_perplexity": baseline}, [
            "unigram_perplexity: add-one-smoothed word frequencies of the training split, the "
            "baseline the network's perplexity is compared with"]
