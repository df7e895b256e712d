"""Every model of torchvision's classification and segmentation zoo
(`torchvision.models.list_models`) against its bundled spec, on the meta device (no weights
allocated, so even the 644M-parameter RegNet-Y-128GF is quick): the same parameter count, and
the same state_dict keys with the same shapes, buffers included.

The outputs are compared for one member of each family in the family's own test file
(tests/compiler/test_zoo_*.py, test_torchvision_parity.py); docs/zoo.md (scripts/zoo_doc.py)
lists the same models with their MACs and spec sizes.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.models import regnet

import engine
from engine.compiler.build import build
from engine.compiler.merge import SPECS_DIR
from engine.views.summary import summarize

SEGMENTATION = torchvision.models.segmentation
MODELS = [*torchvision.models.list_models(module=torchvision.models),
          *torchvision.models.list_models(module=SEGMENTATION)]
NOT_YET: set[str] = set()  # torchvision models that are no bundled spec yet: strict, so adding one fails here


def spec_name(model: str) -> str:
    """torchvision's name -> the bundled spec's (`vit_b_16` -> `vit_b16`)."""
    if model.startswith("vit_"):
        size, patch = model[4:].split("_")
        return f"vit_{size}{patch}"
    return model


def torchvision_on_meta(model: str, monkeypatch) -> torch.nn.Module:
    """torchvision's model with its default arguments (no weights), built on the meta device."""
    kwargs: dict = {}
    if model in torchvision.models.list_models(module=SEGMENTATION):
        kwargs = {"weights_backbone": None, **({} if model.startswith("lraspp") else {"aux_loss": True})}
    if model in ("googlenet", "inception_v3"):  # the bundled specs leave the aux heads out
        kwargs = {"aux_logits": False, "init_weights": False}
    compute = regnet.BlockParams.from_init_params.__func__

    def on_cpu(cls, *args, **kw):  # RegNet computes its widths with tensors: not on meta
        with torch.device("cpu"):
            return compute(cls, *args, **kw)
    monkeypatch.setattr(regnet.BlockParams, "from_init_params", classmethod(on_cpu))
    with torch.device("meta"):
        return torchvision.models.get_model_builder(model)(**kwargs)


def test_the_zoo_has_86_models_and_all_but_the_named_ones_are_specs():
    assert len(MODELS) == 86
    missing = {m for m in MODELS if not (SPECS_DIR / f"{spec_name(m)}.yaml").exists()}
    assert missing == NOT_YET


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.xfail(
    reason="not yet a bundled spec", strict=True)) if m in NOT_YET else m for m in MODELS])
def test_parameter_count_and_state_dict_equal_torchvision(model, monkeypatch):
    ref = torchvision_on_meta(model, monkeypatch)
    shaped = engine.analyze(spec_name(model))
    assert summarize(shaped).params == sum(p.numel() for p in ref.parameters())
    got = build(shaped, device="meta").state_dict()  # (the order may differ: a spec lists its
    # nodes in forward order, torchvision registers Swin's PatchMerging reduction before its norm)
    assert {k: tuple(v.shape) for k, v in got.items()} == \
        {k: tuple(v.shape) for k, v in ref.state_dict().items()}
