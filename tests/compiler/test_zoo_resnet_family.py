"""ResNeXt, Wide ResNet, ViT-H/14 and the FCN / DeepLabV3 segmentation specs against torchvision,
the oracle: for one member of each family torchvision's weights loaded strictly give the same
outputs. (Parameter counts and state_dict keys and shapes of the whole zoo: test_zoo.py.)"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.models import segmentation
from torchvision.models.vision_transformer import VisionTransformer

import engine
from tests.oracle import randomise_batchnorm

# spec name -> torchvision builder (segmentation builders take weights=None, aux_loss=True)
CLASSIFIERS = {
    "resnext50_32x4d": "resnext50_32x4d", "resnext101_32x8d": "resnext101_32x8d",
    "resnext101_64x4d": "resnext101_64x4d", "wide_resnet50_2": "wide_resnet50_2",
    "wide_resnet101_2": "wide_resnet101_2", "vit_h14": "vit_h_14",
}
SEGMENTATION = {s: s for s in ("fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50",
                                "deeplabv3_resnet101")}
ZOO = {**CLASSIFIERS, **SEGMENTATION}


def _torchvision(spec: str, **kwargs) -> torch.nn.Module:
    if spec in SEGMENTATION:
        kwargs = {"weights": None, "weights_backbone": None, "num_classes": 21, "aux_loss": True,
                  **kwargs}
        return getattr(segmentation, SEGMENTATION[spec])(**kwargs)
    return getattr(torchvision.models, CLASSIFIERS[spec])(**kwargs)


def _outputs(out) -> dict[str, torch.Tensor]:
    return dict(out) if isinstance(out, dict) else {"out": out}


def _assert_same_outputs(model, ref, x: torch.Tensor) -> None:
    with torch.no_grad():
        got, want = _outputs(model(x)), _outputs(ref(x))
    assert list(got) == list(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        tolerance = 1e-5 * max(1.0, want[name].abs().max().item())
        assert (got[name] - want[name]).abs().max().item() <= tolerance, name


def _check(spec, ref: torch.nn.Module, *inputs: torch.Tensor, **params) -> None:
    """torchvision's weights (with random batch-norm statistics) load strictly into the spec's
    model, and both give the same outputs in eval mode on each input."""
    ref = ref.eval()
    randomise_batchnorm(ref)
    model = engine.build(spec, **params).eval()
    engine.load_reference_state_dict(model, ref.state_dict(), spec, strict=True)
    for x in inputs:
        _assert_same_outputs(model, ref, x)


@pytest.mark.parametrize("spec", ["resnext50_32x4d", "wide_resnet50_2"])
def test_resnet_variant_loads_torchvision_weights_and_matches_outputs(spec):
    torch.manual_seed(0)
    _check(spec, _torchvision(spec), torch.randn(1, 3, 64, 64), image_size=64)


def test_vit_h14_matches_torchvision_at_two_layers_on_28px():
    # ViT-H/14's width, heads and MLP with 2 of its 32 layers, on a 2x2 patch grid: 40 M
    # parameters instead of 632 M (the full model is checked on the meta device above)
    torch.manual_seed(0)
    ref = VisionTransformer(image_size=28, patch_size=14, num_layers=2, num_heads=16,
                            hidden_dim=1280, mlp_dim=5120)
    _check("vit_h14", ref, torch.randn(2, 3, 28, 28), image_size=28, num_layers=2)


@pytest.mark.parametrize("spec", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_segmentation_loads_torchvision_weights_and_matches_out_and_aux(spec):
    # built for 64 x 64; the heads are upsampled to the image's size when the model runs, as
    # torchvision's are, so a 40 x 56 image gives 40 x 56 maps too
    torch.manual_seed(0)
    _check(spec, _torchvision(spec), torch.randn(1, 3, 64, 64), torch.randn(1, 3, 40, 56),
           image_size=64)


def test_fcn_without_the_aux_head_matches_torchvision_aux_loss_false(tmp_path):
    # the spec that fcn_resnet50.yaml's header gives for torchvision's aux_loss=False
    path = tmp_path / "fcn_no_aux.yaml"
    path.write_text("extends: fcn_resnet50.yaml\nname: fcn_no_aux\n"
                    "graph:\n  aux_classifier: !delete\n  aux_upsample: !delete\n"
                    "outputs: !replace {out: upsample}\n")
    torch.manual_seed(0)
    _check(path, _torchvision("fcn_resnet50", aux_loss=False), torch.randn(1, 3, 64, 64),
           image_size=64)
