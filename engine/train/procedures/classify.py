"""`classify`: supervised classification with the recipe's loss (cross-entropy by default)."""

from __future__ import annotations

import torch
from torch import Tensor

from engine.train.evaluation.metrics import per_sample_loss
from engine.train.procedures.base import Procedure
from engine.train.registry import METRICS, PROCEDURES


def logits_width(shaped) -> int | None:
    """The last dimension of a single-network spec's first output, where it is known."""
    (graph,) = shaped.spec.networks.values()
    ref = next(iter(graph.outputs.values()), None)
    node = shaped.nodes.get(ref.node) if ref is not None else None
    if node is None or not node.outputs:
        return None
    index = node.output_names.index(ref.output) if ref.output in node.output_names else 0
    shape = node.outputs[index].shape
    return shape[-1] if shape else None


@PROCEDURES.register("classify")
class Classify(Procedure):
    """Images in, logits out; one optimizer step per batch."""

    @classmethod
    def spec_problems(cls, shaped, classes: int) -> list[tuple[str, str]]:
        """Logits narrower than the data's classes would index past their end."""
        width = logits_width(shaped)
        if classes and width is not None and width < classes:
            return [(f"the spec's logits have {width} classes, the data has {classes}",
                     f"set the spec's class count to {classes}, e.g. "
                     f"spec: {{name: ..., set: {{num_classes: {classes}}}}}")]
        return []

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
