"""`classify` with auxiliary outputs (issue 26): the recipe's `aux_weights:` weighs each
auxiliary output's loss into the gradient, evaluation reads the main output only, and a recipe
that names an output the spec lacks, or leaves one unnamed, is a located error."""

from __future__ import annotations

import copy
import textwrap

import pytest
import torch
import torch.nn.functional as F

from engine.compiler.ir import SpecError
from engine.train.procedures.classify import Classify
from engine.train.recipe import load_recipe

SPEC = """
# Two heads on one trunk: `logits` (the main output) and `side`, an auxiliary classifier.
name: two_heads
inputs: {image: [B, 1, 8, 8]}
graph:
  flatten: flatten
  trunk:   {op: linear, out: 16}
  act:     relu
  fc:      {op: linear, out: 10}
  side:    {op: linear, out: 10, in: act}
outputs: {logits: fc, side: side}
"""
RECIPE = """
name: tiny
spec: two_heads.yaml
data: {dataset: digits, batch_size: 16}
procedure: classify
optimizer: {name: sgd, lr: 0.1}
steps: 1
"""


def write(tmp_path, extra: str = "", recipe: str = RECIPE):
    (tmp_path / "two_heads.yaml").write_text(textwrap.dedent(SPEC))
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(recipe) + extra)
    return path


def test_the_aux_loss_enters_the_gradient_with_its_weight(tmp_path):
    recipe = load_recipe(write(tmp_path, "aux_weights: {side: 0.3}\n"))
    from engine.compiler.build import build
    torch.manual_seed(0)
    model = build(recipe.shaped)
    reference = copy.deepcopy(model)
    procedure = Classify(recipe, model, torch.device("cpu"), total_steps=1)
    images, labels = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    figures = procedure.train_step((images, labels))

    out = reference(images)
    params = list(reference.parameters())
    main_loss, aux_loss = F.cross_entropy(out["logits"], labels), F.cross_entropy(out["side"], labels)
    main = torch.autograd.grad(main_loss, params, allow_unused=True, retain_graph=True)
    aux = torch.autograd.grad(aux_loss, params, allow_unused=True)
    want_loss = main_loss + 0.3 * aux_loss
    assert figures["loss"] == pytest.approx(want_loss.item(), rel=1e-6)
    for (name, p), g_main, g_aux in zip(model.named_parameters(), main, aux):
        want = (g_main if g_main is not None else 0) + 0.3 * (g_aux if g_aux is not None else 0)
        torch.testing.assert_close(p.grad, torch.as_tensor(want).expand_as(p), msg=name)
    # the trunk is shared: both losses reach it, so neither alone gives its gradient
    assert not torch.allclose(model.trunk.weight.grad, main[0])


def test_evaluation_reads_the_main_output_only(tmp_path):
    recipe = load_recipe(write(tmp_path, "aux_weights: {side: 0.3}\n"))
    from engine.compiler.build import build
    model = build(recipe.shaped).eval()
    procedure = Classify(recipe, model, torch.device("cpu"), total_steps=1)
    images, labels = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    got = procedure.eval_step((images, labels), ["accuracy"])
    with torch.no_grad():
        want = F.cross_entropy(model(images)["logits"], labels, reduction="none")
    torch.testing.assert_close(got["loss"], want)
    assert procedure.predict(images).shape == (4, 10)


def errors(path) -> list:
    with pytest.raises(SpecError) as caught:
        load_recipe(path)
    return caught.value.diagnostics


def test_an_aux_weight_naming_no_output_is_a_located_error(tmp_path):
    path = write(tmp_path, "aux_weights: {side: 0.3, aux2: 0.3}\n")
    (d,) = errors(path)
    assert "aux_weights names output 'aux2', which spec 'two_heads' lacks" in d.message
    assert d.loc.line == 8 and d.path == "aux_weights.aux2"


def test_several_outputs_without_aux_weights_is_a_located_error(tmp_path):
    (d,) = errors(write(tmp_path))
    assert "has outputs side beside its main output 'logits'" in d.message
    assert "aux_weights: {side: 0.3}" in d.hint
    assert d.loc.line == 3  # the recipe's `spec:` line


def test_aux_weights_on_a_procedure_without_aux_outputs_is_an_error(tmp_path):
    gan = """
    name: tiny
    spec: gan_mlp
    data: {dataset: digits, batch_size: 16}
    procedure: gan
    optimizers: {generator: {name: adam, lr: 0.001}, discriminator: {name: adam, lr: 0.001}}
    steps: 1
    """
    diagnostics = errors(write(tmp_path, "aux_weights: {side: 0.3}\n", recipe=gan))
    assert any("trains no auxiliary outputs" in d.message for d in diagnostics)
