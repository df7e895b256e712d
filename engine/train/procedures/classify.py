"""`classify`: supervised classification with the recipe's loss (cross-entropy by default).

A spec with several outputs (GoogLeNet's and Inception v3's auxiliary classifiers, with
`aux_logits: true`) trains on the main one, the output named `logits` (else the first), plus
each auxiliary output's loss times its weight from the recipe's `aux_weights: {aux1: 0.3, aux2:
0.3}`; evaluation and prediction read the main output only. Every other output must be named
there (weight 0 leaves one out of the loss), so none is ignored silently.
"""

from __future__ import annotations

import torch
from torch import Tensor

from engine.blocks.registry import suggest
from engine.compiler.ir import Diagnostic
from engine.train.evaluation.metrics import per_sample_loss
from engine.train.procedures.base import Procedure
from engine.train.registry import METRICS, PROCEDURES


def main_output(names: list[str]) -> str:
    """The output a classifier is scored on: `logits` where there is one, else the first."""
    return "logits" if "logits" in names else names[0]


def logits_width(shaped) -> int | None:
    """The last dimension of a single-network spec's main output, where it is known."""
    (graph,) = shaped.spec.networks.values()
    ref = graph.outputs.get(main_output(list(graph.outputs))) if graph.outputs else None
    node = shaped.nodes.get(ref.node) if ref is not None else None
    if node is None or not node.outputs:
        return None
    index = node.output_names.index(ref.output) if ref.output in node.output_names else 0
    shape = node.outputs[index].shape
    return shape[-1] if shape else None


def aux_weight_problems(doc, names: list[str], spec_name: str) -> list[Diagnostic]:
    """`aux_weights:` names only auxiliary outputs the spec has, and names all of them."""
    main, weights = main_output(names), doc.get("aux_weights") or {}
    problems = []
    for name in weights:
        if name == main:
            problems.append(Diagnostic(
                f"aux_weights names '{name}', the main output (its loss always counts once)",
                weights.key_loc(name), f"aux_weights.{name}", "name only the auxiliary outputs"))
        elif name not in names:
            problems.append(Diagnostic(
                f"aux_weights names output '{name}', which spec '{spec_name}' lacks (its outputs: "
                f"{', '.join(names)})", weights.key_loc(name), f"aux_weights.{name}",
                suggest(name, [n for n in names if n != main]) or
                "switch the spec's auxiliary heads on (e.g. spec: {set: {aux_logits: true}}), "
                "or remove the entry"))
    unnamed = [n for n in names if n != main and n not in weights]
    if unnamed:
        at = doc.key_loc("aux_weights") if "aux_weights" in doc else doc.value_loc("spec")
        listed = ", ".join(f"{n}: 0.3" for n in unnamed)
        problems.append(Diagnostic(
            f"spec '{spec_name}' has outputs {', '.join(unnamed)} beside its main output '{main}', "
            "and no aux_weights says how they train", at, "aux_weights",
            f"add aux_weights: {{{listed}}} (a weight of 0 leaves an output out of the loss)"))
    return problems


@PROCEDURES.register("classify")
class Classify(Procedure):
    """Images in, logits out (and auxiliary logits, weighted by `aux_weights:`); one optimizer
    step per batch."""

    @classmethod
    def spec_problems(cls, shaped, classes: int) -> list[tuple[str, str]]:
        """Logits narrower than the data's classes would index past their end."""
        width = logits_width(shaped)
        if classes and width is not None and width < classes:
            return [(f"the spec's logits have {width} classes, the data has {classes}",
                     f"set the spec's class count to {classes}, e.g. "
                     f"spec: {{name: ..., set: {{num_classes: {classes}}}}}")]
        return []

    @classmethod
    def recipe_problems(cls, doc, shaped) -> list[Diagnostic]:
        (graph,) = shaped.spec.networks.values()
        return aux_weight_problems(doc, list(graph.outputs), shaped.spec.name)

    def setup(self, total_steps: int) -> None:
        super().setup(total_steps)
        self.aux_weights = {k: float(v) for k, v in (self.recipe.get("aux_weights") or {}).items()}

    def main(self, out) -> Tensor:
        """The main logits of a forward's result: the tensor, or the dict's main output."""
        return out[main_output(list(out))] if isinstance(out, dict) else out

    def total_loss(self, out, labels: Tensor) -> Tensor:
        """The main output's loss plus each auxiliary output's times its weight."""
        loss = self.loss(self.main(out), labels)
        for name, weight in self.aux_weights.items():
            if weight:
                loss = loss + weight * self.loss(out[name], labels)
        return loss

    def train_step(self, batch) -> dict[str, float]:
        images, labels = batch
        with self.autocast():
            out = self.model(images)
            loss = self.total_loss(out, labels)
        logits = self.main(out)
        self.optimize(loss)
        return {"loss": loss.item(),
                "accuracy": (logits.argmax(dim=-1) == labels).float().mean().item()}

    @torch.no_grad()
    def eval_step(self, batch, metrics: list[str]) -> dict[str, Tensor]:
        images, labels = batch
        with self.autocast():
            logits = self.main(self.eval_model()(images)).float()
        out = {"loss": per_sample_loss(self.loss, logits, labels)}
        out.update({m: METRICS.get(m)(logits, labels) for m in metrics})
        return out

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        return self.main(self.eval_model()(images)).softmax(dim=-1)
