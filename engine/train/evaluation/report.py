"""`engine eval`'s figures, gathered once for both printouts and recorded in the run folder.

A checkpoint's metrics on a split, its sample metrics (with the judge that made them) and, on
request, the classifier's pixel baseline. The record, `eval-<split>.json` beside the run's
recipe.yaml, is what benchmarks/docs_figures.py reads: a figure in docs/ comes from a record,
never from a copied printout.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine.train.checkpoint import write_text_atomic


def evaluate_checkpoint(run, split: str, seed: int, baseline: bool) -> tuple[dict, dict, list[str]]:
    """(metrics, sample figures, notes) of a restored run on `split`."""
    metrics = dict(run.evaluate(split))
    if baseline:
        from engine.train.evaluation.baseline import pixel_logistic_accuracy
        metrics["pixel_baseline_accuracy"] = pixel_logistic_accuracy(run, split)
    names = run.recipe.get("eval", {}).get("sample_metrics") or []
    if not names:
        return metrics, {}, []
    from engine.train.evaluation.sampling import evaluate_samples
    samples, notes = evaluate_samples(run, split, names, seed)
    return metrics, samples, notes


def record(run, checkpoint: str, overrides: list[str], result: dict) -> Path | None:
    """Write `result` as the run folder's eval-<split>.json (None where the checkpoint is not
    in a run folder: a copied .pt file has no run to describe)."""
    path = Path(checkpoint).resolve()
    folder = path.parent.parent
    if not (folder / "recipe.yaml").is_file():
        return None
    doc = {**plain(result), "checkpoint": path.relative_to(folder).as_posix(),
           "overrides": list(overrides), "evaluated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    target = folder / f"eval-{result['split']}.json"
    write_text_atomic(target, json.dumps(doc, indent=1) + "\n")
    return target


def plain(result: dict) -> dict:
    """JSON-ready values (0-d tensors and numpy scalars as floats)."""
    return {k: float(v) if hasattr(v, "item") else v for k, v in result.items()}
