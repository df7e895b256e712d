"""`--weights torchvision` for the whole zoo (engine/train/weights.py's tables), offline: every
bundled spec named like a torchvision model with weights is mapped, every mapped model and weights
enum exists, and for small models torchvision's state_dict, left in a temporary torch.hub cache
as a download would leave it, loads through the weights option's own code path and gives
torchvision's outputs. Nothing is downloaded: the download function raises."""

from __future__ import annotations

import re
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models import segmentation
from torchvision.models.vision_transformer import VisionTransformer

import engine
from engine.cli import main
from engine.compiler.load import load_file
from engine.compiler.merge import SPECS_DIR
from engine.train.weights import (
    TORCHVISION,
    TORCHVISION_ZOO,
    image_size_note,
    source_problem,
    torchvision_model,
    torchvision_specs,
)
from tests.oracle import randomise_batchnorm

SEGMENTATION = set(torchvision.models.list_models(module=segmentation))
SMALL = ["mobilenet_v3_small", "shufflenet_v2_x0_5", "mnasnet0_5", "regnet_x_400mf",
         "lraspp_mobilenet_v3_large"]
BUNDLED = sorted(p.stem for p in SPECS_DIR.glob("*.yaml"))


def _torchvision_names(spec: str) -> list[str]:
    """The torchvision models with weights that a spec's name may stand for: itself, or with `_`
    before its digits (vit_h14: vit_h_14)."""
    names = {spec, re.sub(r"(?<=[a-z])(?=\d)", "_", spec)}
    return sorted(n for n in names if n in torchvision.models.list_models()
                  and len(torchvision.models.get_model_weights(n)) > 0)


@pytest.fixture
def offline(tmp_path, monkeypatch) -> Path:
    """An empty torch.hub cache (its checkpoints folder returned), and no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def download(url, dst, *args, **kwargs):
        raise urllib.error.URLError(f"no network in tests ({url})")

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def _cache(folder: Path, weights, model: torch.nn.Module) -> Path:
    """`model`'s state_dict where a download of `weights` would leave it."""
    path = folder / weights.url.rsplit("/", 1)[1]
    torch.save(model.state_dict(), path)
    return path


def _reference(name: str) -> torch.nn.Module:
    """torchvision's `name` in the layout of its DEFAULT weights, with no weights loaded."""
    if name in SEGMENTATION:  # no backbone download either
        return torchvision.models.get_model(name, weights=None, weights_backbone=None,
                                            num_classes=21, **({} if name.startswith("lraspp")
                                                               else {"aux_loss": True}))
    return torchvision.models.get_model(name, weights=None)


# ---- the table ------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", BUNDLED)
def test_every_bundled_spec_with_torchvision_weights_is_mapped(spec):
    names = _torchvision_names(spec)
    if not names:  # vgg (a configurable base), resnet50_v1 (the paper's stride placement), ...
        assert torchvision_model(spec) is None
        return
    assert torchvision_model(spec) in names, f"{spec}: add it to TORCHVISION_ZOO ({names[0]})"
    assert spec in torchvision_specs()
    assert load_file(SPECS_DIR / f"{spec}.yaml")["name"] == spec  # the table is keyed by `name:`


def test_the_zoo_table_covers_the_new_families_and_keeps_the_parity_table_apart():
    assert not set(TORCHVISION) & set(TORCHVISION_ZOO)
    for spec in ("resnext50_32x4d", "wide_resnet101_2", "vit_h14", "fcn_resnet50",
                 "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large",
                 "mobilenet_v2", "mnasnet1_3", "shufflenet_v2_x2_0", "efficientnet_b7",
                 "efficientnet_v2_l", "regnet_x_32gf", "regnet_y_128gf"):
        assert spec in TORCHVISION_ZOO and spec in torchvision_specs()
    assert torchvision_model("vit_h14") == "vit_h_14"
    assert torchvision_model("small_cnn") is None


@pytest.mark.parametrize("spec", sorted({**TORCHVISION, **TORCHVISION_ZOO}))
def test_each_mapped_model_and_weights_enum_exist_in_torchvision(spec):
    name = torchvision_model(spec)
    assert callable(torchvision.models.get_model_builder(name))
    enum = torchvision.models.get_model_weights(name)
    assert enum.DEFAULT.url.endswith(".pth")
    if name in SEGMENTATION:
        assert enum is getattr(segmentation, enum.__name__)
        assert len(enum.DEFAULT.meta["categories"]) == 21  # the specs' default num_classes


def test_a_mapped_spec_not_bundled_is_tolerated(monkeypatch):
    monkeypatch.setitem(TORCHVISION_ZOO, "swin_not_yet", "swin_t")
    assert "swin_not_yet" not in torchvision_specs()
    assert source_problem("torchvision", "swin_not_yet") is None
    message, hint = source_problem("torchvision", "small_cnn")
    assert "no torchvision weights" in message
    assert "lraspp_mobilenet_v3_large" in hint and "swin_not_yet" not in hint


def test_recipes_and_validate_accept_the_new_specs():
    assert source_problem("torchvision", "deeplabv3_mobilenet_v3_large") is None
    assert source_problem("torchvision:IMAGENET1K_V2", "regnet_y_400mf") is None


# ---- loading, through the weights option's own code path --------------------------------------

@pytest.mark.parametrize("spec", SMALL)
def test_torchvision_weights_load_and_give_torchvisions_outputs(spec, offline):
    torch.manual_seed(0)
    name = torchvision_model(spec)
    ref = _reference(name).eval()
    randomise_batchnorm(ref)  # statistics other than 0/1, so a wrong mapping shows
    _cache(offline, torchvision.models.get_model_weights(name).DEFAULT, ref)
    model = engine.build(spec, weights="torchvision").eval()
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        got, want = model(x), ref(x)
    want = want["out"] if isinstance(want, dict) else want
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())


def test_engine_build_reports_every_entry_loaded(offline, capsys):
    name = "deeplabv3_mobilenet_v3_large"
    ref = _reference(name)
    path = _cache(offline, segmentation.DeepLabV3_MobileNet_V3_Large_Weights.DEFAULT, ref)
    assert main(["build", name, "--weights", "torchvision", "--set", "image_size=64",
                 "--depth", "0"]) == 0
    out = capsys.readouterr().out
    assert f"weights: torchvision {name} COCO_WITH_VOC_LABELS_V1 ({path}) -> {name}" in out
    assert f"{len(ref.state_dict())} entries loaded: every key and shape agree" in out
    assert "note:" not in out


def test_not_cached_and_offline_names_the_file(offline):
    from engine.compiler.ir import SpecError
    with pytest.raises(SpecError) as err:
        engine.build("shufflenet_v2_x0_5", weights="torchvision")
    text = str(err.value)
    assert "cannot get torchvision's shufflenet_v2_x0_5 weights IMAGENET1K_V1" in text
    url = torchvision.models.ShuffleNet_V2_X0_5_Weights.DEFAULT.url
    assert str(offline / url.rsplit("/", 1)[1]) in text


# ---- weights for one image size: vit_h14 -----------------------------------------------------

def test_image_size_note_for_fixed_size_weights():
    vit_h = torchvision.models.ViT_H_14_Weights
    note = image_size_note(vit_h.DEFAULT, 224)
    assert "518 x 518" in note and "--set image_size=518" in note
    assert "torchvision:IMAGENET1K_SWAG_LINEAR_V1, for 224" in note
    assert image_size_note(vit_h.DEFAULT, 518) == ""
    assert image_size_note(vit_h.IMAGENET1K_SWAG_LINEAR_V1, 224) == ""
    # convolutional weights run at any size: no note
    assert image_size_note(torchvision.models.Inception_V3_Weights.DEFAULT, 224) == ""
    assert image_size_note(torchvision.models.EfficientNet_B7_Weights.DEFAULT, 224) == ""


def test_vit_h14_default_weights_need_image_size_518(offline, capsys):
    # vit_h14's widths shrunk to a tiny model (the spec's params), in the layout of torchvision's
    # DEFAULT weights, SWAG E2E at 518 x 518: built at the spec's 224, its position embedding
    # does not fit and the report says what to set; built at 518, everything loads
    small = {"num_layers": 1, "num_heads": 2, "hidden_dim": 32, "mlp_dim": 64}
    torch.manual_seed(0)
    ref = VisionTransformer(image_size=518, patch_size=14, **small).eval()
    _cache(offline, torchvision.models.ViT_H_14_Weights.DEFAULT, ref)
    sets = [f"{k}={v}" for k, v in small.items()]
    assert main(["build", "vit_h14", "--weights", "torchvision", "--depth", "0",
                 *(a for s in sets for a in ("--set", s))]) == 0
    out = capsys.readouterr().out
    assert "1 changed shape (re-initialised)" in out and "encoder.pos_embedding" in out
    assert "note: torchvision's IMAGENET1K_SWAG_E2E_V1 weights are for 518 x 518 images" in out
    model = engine.build("vit_h14", weights="torchvision", image_size=518, **small).eval()
    x = torch.randn(1, 3, 518, 518)
    with torch.no_grad():
        got, want = model(x), ref(x)
    assert (got - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())
