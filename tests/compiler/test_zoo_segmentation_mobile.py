"""DeepLabV3 and LR-ASPP on MobileNetV3-Large, and mobilenet_v3_large.yaml's `dilated` backbone,
against torchvision, the oracle: the published MACs, and torchvision's weights (random batch-norm
statistics) loaded strictly give the same outputs in eval mode, on a square and a non-square image.
(Parameter counts and state_dict keys and shapes of the whole zoo: tests/compiler/test_zoo.py.)"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.models import segmentation

import engine
from engine.views.summary import summarize
from tests.oracle import randomise_batchnorm

# spec name -> torchvision builder (both in torchvision.models.segmentation) and its keyword
# arguments: the layout of the pretrained weights (DeepLabV3's has the aux head, LR-ASPP none)
SEGMENTATION = {
    "deeplabv3_mobilenet_v3_large": {"aux_loss": True},
    "lraspp_mobilenet_v3_large": {},
}
WEIGHTS = {"deeplabv3_mobilenet_v3_large": "DeepLabV3_MobileNet_V3_Large_Weights",
           "lraspp_mobilenet_v3_large": "LRASPP_MobileNet_V3_Large_Weights"}


def _torchvision(spec: str, **kwargs) -> torch.nn.Module:
    kwargs = {"weights": None, "weights_backbone": None, "num_classes": 21, **SEGMENTATION[spec],
              **kwargs}
    return getattr(segmentation, spec)(**kwargs)


def _shapes(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def _outputs(out) -> dict[str, torch.Tensor]:
    return dict(out) if isinstance(out, dict) else {"out": out}


def _check(spec, ref: torch.nn.Module, *inputs: torch.Tensor, **params) -> None:
    """`ref`'s weights (with random batch-norm statistics) load strictly into the spec's model,
    and both give the same outputs in eval mode on each input."""
    ref = ref.eval()
    randomise_batchnorm(ref)
    model = engine.build(spec, **params).eval()
    engine.load_reference_state_dict(model, ref.state_dict(), spec, strict=True)
    for x in inputs:
        with torch.no_grad():
            got, want = _outputs(model(x)), _outputs(ref(x))
        assert list(got) == list(want)
        for name in want:
            assert got[name].shape == want[name].shape == (x.shape[0], 21, *x.shape[2:]), name
            tolerance = 1e-5 * max(1.0, want[name].abs().max().item())
            assert (got[name] - want[name]).abs().max().item() <= tolerance, name


@pytest.mark.parametrize("spec", SEGMENTATION)
def test_macs_equal_torchvisions_published_ops(spec):
    # torchvision's "_ops" (GFLOPS at its 520 x 520 evaluation size) are these MACs, rounded
    summary = summarize(engine.analyze(spec))
    assert round(summary.macs / 1e9, 3) == getattr(segmentation, WEIGHTS[spec]).DEFAULT.meta["_ops"]


@pytest.mark.parametrize("spec", SEGMENTATION)
def test_loads_torchvision_weights_and_matches_outputs(spec):
    # built for 64 x 64; the heads are upsampled to the image's size when the model runs, as
    # torchvision's are, so a 40 x 56 image gives 40 x 56 maps too
    torch.manual_seed(0)
    _check(spec, _torchvision(spec), torch.randn(1, 3, 64, 64), torch.randn(2, 3, 40, 56),
           image_size=64)


def test_deeplabv3_without_the_aux_head_matches_torchvision_aux_loss_false(tmp_path):
    # the spec that deeplabv3_mobilenet_v3_large.yaml's header gives for aux_loss=False
    path = tmp_path / "deeplabv3_mobile_no_aux.yaml"
    path.write_text("extends: deeplabv3_mobilenet_v3_large.yaml\nname: deeplabv3_mobile_no_aux\n"
                    "graph:\n  aux_classifier: !delete\n  aux_upsample: !delete\n"
                    "outputs: !replace {out: upsample}\n")
    torch.manual_seed(0)
    _check(path, _torchvision("deeplabv3_mobilenet_v3_large", aux_loss=False),
           torch.randn(1, 3, 64, 64), image_size=64)


def test_other_class_counts_match_torchvision():
    with torch.device("meta"):
        ref = _torchvision("lraspp_mobilenet_v3_large", num_classes=3)
    assert _shapes(engine.build("lraspp_mobilenet_v3_large", device="meta", num_classes=3)) == \
        _shapes(ref)


@pytest.mark.parametrize("spec", ["mobilenet_v3_large", "mobilenet_v3_small"])
def test_dilated_backbone_matches_torchvision_dilated(spec):
    # torchvision's _mobilenet_v3_conf(dilated=True): the last stage keeps output stride 16
    torch.manual_seed(0)
    ref = getattr(torchvision.models, spec)(dilated=True).eval()
    randomise_batchnorm(ref)
    model = engine.build(spec, dilated=True).eval()
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        got, want = model.features(x), ref.features(x)
    assert got.shape == want.shape == (1, want.shape[1], 4, 5)
    assert (got - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())
    with torch.no_grad():
        assert model(x).shape == ref(x).shape == (1, 1000)
