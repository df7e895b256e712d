"""`classify`: supervised classification with the recipe's loss (cross-entropy by default)."""

from __future__ import annotations

import torch
from torch import Tensor

from engine.train.evaluation.metrics import per_sample_loss
from engine.train.procedures.base import Procedure
from engine.train.registry import METRICS, PROCEDURES


@PROCEDURES.register("classify")
class Classify(Procedure):
    """Images in, logits out; one optimizer step per batch."""

    def train_step(self, batch) -> dict[str, float]:
        images, labels = batch
        with self.autocast():
            logits = self.model(images)
            loss = self.loss(logits, labels)
        self.optimize(loss)
        return {"loss": loss.item(),
                "accuracy": (logits.argmax(dim=-1) == labels).float().mean().item()}

    @torch.no_grad()
    def eval_step(self, batch, metrics: list[str]) -> dict[str, Tensor]:
        images, labels = batch
        with self.autocast():
            logits = self.eval_model()(images).float()
        out = {"loss": per_sample_loss(self.loss, logits, labels)}
        out.update({m: METRICS.get(m)(logits, labels) for m in metrics})
        return out

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        return self.eval_model()(images).softmax(dim=-1)
