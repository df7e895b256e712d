"""`engine summary`: totals against torchvision, MACs against its published figures, sharing, freezing."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

import engine
from engine.cli import main
from engine.views.summary import summarize

# torchvision's published GFLOPS are these MACs (224x224, batch 1)
MACS = {"resnet50": 4_089_184_256, "vit_b16": 17_563_828_224, "densenet121": 2_834_161_664}
CLASSIFIERS = {"alexnet": "alexnet", "vgg16": "vgg16", "resnet50": "resnet50",
               "googlenet": "googlenet", "inception_v3": "inception_v3",
               "densenet121": "densenet121", "convnext_tiny": "convnext_tiny",
               "vit_b16": "vit_b_16", "squeezenet1_1": "squeezenet1_1"}


@pytest.mark.parametrize("spec, macs", MACS.items())
def test_macs_equal_torchvision_published_figures(spec, macs):
    assert summarize(engine.analyze(spec)).macs == macs


@pytest.mark.parametrize("spec", CLASSIFIERS)
def test_summary_totals_equal_torchvision(spec):
    kwargs = {"aux_logits": False, "init_weights": True} if spec in ("googlenet",
                                                                      "inception_v3") else {}
    with torch.device("meta"):
        ref = getattr(torchvision.models, CLASSIFIERS[spec])(**kwargs)
    summary = summarize(engine.analyze(spec))
    assert summary.params == sum(p.numel() for p in ref.parameters())
    assert summary.trainable == summary.params


def test_shared_and_tied_parameters_count_once_and_frozen_ones_are_shown(spec_file):
    shaped = engine.analyze(spec_file("""
        inputs: {tokens: {shape: [B, T], dtype: long}}
        dims: {T: 4}
        graph:
          embed: {op: embedding, num: 10, dim: 6, freeze: true}
          mix: {op: linear, out: 6}
          again: {share: mix}
          proj: {op: linear, out: 10, bias: false, tie: {weight: embed.weight}}
    """))
    summary = summarize(shaped)
    # embedding 60 (frozen) + mix 42 (shared: once); proj's weight is the embedding's tensor
    assert (summary.params, summary.trainable) == (60 + 42, 42)
    model = engine.build(shaped.spec.file)
    assert summary.params == sum(p.numel() for p in model.parameters())
    assert summary.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    # MACs: mix twice (4 tokens x 6 x 6 each) and proj once (4 x 6 x 10)
    assert summary.macs == 2 * 4 * 36 + 4 * 60


def test_activation_memory_is_every_primitive_output(spec_file):
    shaped = engine.analyze(spec_file("""
        inputs: {x: [B, 3, 8, 8]}
        graph:
          conv: {op: conv, out: 4, k: 3, pad: 1}
          relu: relu
          pool: {op: adaptive_avgpool, size: 1}
    """))
    per_sample = 4 * (4 * 8 * 8 + 4 * 8 * 8 + 4)  # float32 outputs of conv, relu and pool
    assert summarize(shaped, batch=16).activation_bytes == 16 * per_sample


def test_cli_summary_table_and_json(capsys):
    assert main(["summary", "resnet50", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "4,089,184,256" in out and "25,557,032" in out and "layer3" in out
    assert main(["summary", "vit_b16", "--json", "--batch", "8"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["macs"] == MACS["vit_b16"] and data["batch"] == 8
