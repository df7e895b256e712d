"""Seq2Seq with LSTM cells and a bidirectional encoder trains through the `seq2seq` procedure on
CI-sized runs: the two bundled recipes train, translate and score from the command line, and
every variant's loss falls on a fixed batch with a gradient reaching every parameter (the
bridges and the LSTM's cell state included)."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from engine.cli import main
from engine.train.recipe import load_recipe
from engine.train.runner import Run

pytestmark = pytest.mark.usefixtures("one_thread")

# The bundled LSTM / bidirectional recipes, made CI-sized: a few steps of a narrow network.
TINY = ["spec.set.embed=16", "spec.set.hidden=24"]
CI_SIZED = {"seq2seq_lstm_bi_multi30k": TINY, "seq2seq_attn_lstm_bi_multi30k": TINY}
STEPS = ["epochs=null", "steps=2", "data.batch_size=8", "eval.every_epochs=0",
         "eval.sample_metrics=[]"]  # the recipes' amp: true (bf16 autocast; the LSTM in fp32)


@pytest.fixture(autouse=True)
def _data(data_root_for):
    """Multi30k: the shared captions, else tests/tiny_data.py's few (a fresh clone)."""
    data_root_for("multi30k")


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


@pytest.mark.parametrize("name", sorted(CI_SIZED))
def test_recipe_trains_translates_and_scores(name, tmp_path, capsys):
    recipe = load_recipe(name, STEPS)
    assert recipe.shaped.spec.params["cell"] == "lstm" and recipe.shaped.spec.params["bidirectional"]
    argv = ["train", name, "--device", "cpu", "--output", str(tmp_path)]
    assert main([*argv, *_sets([*STEPS, *CI_SIZED[name]])]) == 0
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith(name + "-")]
    with (folder / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows[-1]["step"] == "2" and math.isfinite(float(rows[-1]["train_loss"]))
    common = ["--checkpoint", str(folder / "checkpoints" / "last.pt"),
              *_sets([*CI_SIZED[name], "procedure.max_len=5"])]
    capsys.readouterr()
    assert main(["infer", name, *common, "Ein Hund rennt im Schnee.", "--beam", "3"]) == 0
    assert "Ein Hund rennt im Schnee.\n  -> " in capsys.readouterr().out
    assert main(["eval", name, *common, "--split", "val", "--set", "eval.sample_metrics=[bleu]"]) == 0
    assert "bleu" in capsys.readouterr().out


VARIANTS = [  # (spec, cell, bidirectional): the new params alone and together, with and without attention
    ("seq2seq", "lstm", False),
    ("seq2seq", "gru", True),
    ("seq2seq", "lstm", True),
    ("seq2seq_attn", "lstm", False),
    ("seq2seq_attn", "rnn", True),
    ("seq2seq_attn", "lstm", True),
]


@pytest.mark.parametrize("spec, cell, bidirectional", VARIANTS)
def test_variant_loss_falls_and_every_parameter_learns(spec, cell, bidirectional, tmp_path):
    base = "seq2seq_multi30k" if spec == "seq2seq" else "seq2seq_attn_multi30k"
    width = (f"{{cell: {cell}, bidirectional: {str(bidirectional).lower()}, embed: 16, hidden: 32, "
             f"layers: 2, dropout: 0.0}}")
    recipe = load_recipe(base, [*STEPS, f"spec={{name: {spec}, set: {width}}}", "scheduler=null",
                                "optimizer={name: adam, lr: 0.003}"])
    run = Run(recipe, tmp_path / "run", "cpu")
    dataset, procedure = run.train_set, run.procedure
    batch = dataset.collate([dataset[i] for i in range(8)])
    torch.manual_seed(0)
    losses = [procedure.train_step(batch)["loss"]]
    silent = [n for n, p in procedure.unwrapped.named_parameters()
              if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not silent, f"no gradient reached {silent}"
    losses += [procedure.train_step(batch)["loss"] for _ in range(24)]
    assert all(math.isfinite(v) for v in losses), losses
    assert losses[-1] < 0.7 * losses[0], losses
