"""The `transunet` spec (Chen et al., 2021): shapes, a hand-counted parameter total, its transformer
layer being ViT's `encoder_block` (included from vit_b16.yaml), the error for a bad image size, a
few `segment` training steps on synthetic data, and its recipe end to end at CI size."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from torch import nn

import engine
from engine.cli import main
from engine.compiler.ir import SpecError
from engine.compiler.merge import SPECS_DIR

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest

# a tiny TransUNet: 4 stem stages (1/2 .. 1/16), a 2-layer ViT of width 8
TINY = dict(in_channels=1, classes=2, stem_widths=[2, 3, 4, 5], hidden_dim=8, num_layers=2,
            num_heads=2, mlp_dim=16, cup_width=6, decoder_widths=[4, 3, 2, 2])
VIT_PATH = "transunet.inner.inner.inner.vit"  # the bottom level (1/16) holds the ViT


def build(name: str, **params) -> nn.Module:
    return engine.build(SPECS_DIR / f"{name}.yaml", **params)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("size, batch", [(32, 2), (64, 1)])
def test_logits_have_the_input_size(size, batch):
    m = build("transunet", image_size=size, **TINY).eval()
    out = m(torch.randn(batch, 1, size, size))
    assert out.shape == (batch, 2, size, size)


def test_three_stem_stages_need_sides_divisible_by_8():
    params = {**TINY, "stem_widths": [2, 3, 4], "decoder_widths": [4, 3, 2], "in_channels": 3,
              "classes": 5}
    m = build("transunet", image_size=24, **params).eval()  # a 3x3 token grid
    assert m(torch.randn(2, 3, 24, 24)).shape == (2, 5, 24, 24)
    vit = m.get_submodule("transunet.inner.inner.vit")  # the third level (1/8) is the bottom
    assert vit.encoder.pos_embedding.shape == (1, 9, 8)


def test_parameter_count_follows_the_hand_formula():
    size, cin, k = 32, TINY["in_channels"], TINY["classes"]
    stem, dec = TINY["stem_widths"], TINY["decoder_widths"]
    d, m, layers, cup = TINY["hidden_dim"], TINY["mlp_dim"], TINY["num_layers"], TINY["cup_width"]

    def cbr(c_in, c_out):  # 3x3 conv without bias + batch norm (weight, bias)
        return 9 * c_in * c_out + 2 * c_out

    grid = size // 16
    stem_total = sum(cbr(c_in, c) + cbr(c, c) for c_in, c in zip([cin, *stem[:-1]], stem))
    vit_layer = (2 * d                          # ln_1
                 + 3 * d * d + 3 * d            # attention in_proj (q, k, v) weight and bias
                 + d * d + d                    # out_proj
                 + 2 * d                        # ln_2
                 + d * m + m + m * d + d)       # MLP
    vit = (stem[-1] * d + d                     # patch embedding: 1x1 conv
           + grid * grid * d                    # position embedding
           + layers * vit_layer + 2 * d)        # layers and the final layernorm
    # the CUP: 3x3 conv to `cup`, then per stage (deepest first) upsample, concat the skip
    # (the stem stage one level up; none at full size), two 3x3 convs
    ups, skips = [cup, *dec[:-1]], [*reversed(stem[:-1]), 0]
    decoder = cbr(d, cup) + sum(cbr(u + s, w) + cbr(w, w) for u, s, w in zip(ups, skips, dec))
    head = 9 * dec[-1] * k + k
    assert n_params(build("transunet", image_size=size, **TINY)) \
        == stem_total + vit + decoder + head


def test_the_default_model_size():
    # R50-ViT-B/16 in the paper is ~105 M; the small conv stem here instead of ResNet-50
    assert n_params(build("transunet")) == 96_936_866


def test_the_transformer_layer_is_vits_encoder_block():
    d, heads, mlp = TINY["hidden_dim"], TINY["num_heads"], TINY["mlp_dim"]
    tu = build("transunet", image_size=32, **TINY).eval()
    vit = build("vit_b16", image_size=32, in_channels=1, num_classes=3, num_layers=1,
                hidden_dim=d, num_heads=heads, mlp_dim=mlp).eval()
    theirs = vit.encoder.layers.encoder_layer_0
    for i in range(TINY["num_layers"]):
        ours = tu.get_submodule(f"{VIT_PATH}.encoder.layers.encoder_layer_{i}")
        assert type(ours).__name__ == type(theirs).__name__ == "EncoderBlock"
        assert {k: (type(v), v.shape) for k, v in ours.state_dict().items()} == \
               {k: (type(v), v.shape) for k, v in theirs.state_dict().items()}
        assert [(n, type(c)) for n, c in ours.named_modules()] == \
               [(n, type(c)) for n, c in theirs.named_modules()]
        ours.load_state_dict(theirs.state_dict(), strict=True)
        tokens = torch.randn(2, 5, d)
        torch.testing.assert_close(ours(tokens), theirs(tokens), rtol=0, atol=0)
    # the encoder around the layers has vit_b16's names too (no class token: the grid's tokens)
    ours_keys = {k for k in tu.state_dict() if k.startswith(f"{VIT_PATH}.encoder.")}
    theirs_keys = {k for k in vit.state_dict() if k.startswith("encoder.")}
    strip = len(VIT_PATH) + 1
    assert {k[strip:] for k in ours_keys if "encoder_layer_1" not in k} == theirs_keys


def test_an_image_size_not_divisible_by_16_is_reported_at_the_position_embedding():
    with pytest.raises(SpecError) as err:
        build("transunet", image_size=40, **TINY)
    text = str(err.value)
    assert "transunet.yaml" in text and "pos_embedding" in text and "shape mismatch" in text


def test_segment_steps_on_synthetic_data_train_every_parameter():
    from engine.train.procedures.segment import Segment
    model = build("transunet", image_size=32, **TINY)
    recipe = {"optimizer": {"name": "adam", "lr": 1e-3}, "options": {}, "amp": False}
    procedure = Segment(recipe, model, torch.device("cpu"), 3)
    procedure.train_mode()
    images = torch.rand(4, 1, 32, 32)
    masks = (images[:, 0] > 0.5).long()  # a learnable target: the bright pixels
    losses = [procedure.train_step((images, masks))["loss"] for _ in range(3)]
    assert all(math.isfinite(x) for x in losses)
    missing = [n for n, p in model.named_parameters()
               if p.grad is None or not p.grad.abs().sum() > 0 or not p.grad.isfinite().all()]
    assert not missing


def test_the_recipe_trains_and_evaluates_at_ci_size(tmp_path, capsys, data_root_for):
    data_root_for("isbi2012_membrane")  # the shared sections, else tests/tiny_data.py's (a fresh clone)
    ci_sized = ["spec.set.image_size=32", "spec.set.stem_widths=[2,3,4,5]",
                "spec.set.decoder_widths=[4,3,2,2]", "spec.set.hidden_dim=8",
                "spec.set.num_heads=2", "spec.set.mlp_dim=16", "spec.set.num_layers=1",
                "spec.set.cup_width=6", "data.args.crop=32", "data.args.eval_crop=32"]
    steps = ["epochs=null", "steps=2", "data.batch_size=2", "eval.every_epochs=0"]
    sets = [a for s in [*ci_sized, *steps] for a in ("--set", s)]
    assert main(["train", "transunet_membrane", "--device", "cpu", "--output", str(tmp_path),
                 *sets]) == 0
    (folder,) = tmp_path.iterdir()
    with (folder / "metrics.csv").open() as f:
        row = list(csv.DictReader(f))[-1]
    assert row["step"] == "2" and math.isfinite(float(row["train_loss"]))
    checkpoint = str(folder / "checkpoints" / "last.pt")
    capsys.readouterr()
    assert main(["eval", "transunet_membrane", "--checkpoint", checkpoint, "--split", "test",
                 "--device", "cpu", *sets]) == 0
    out = capsys.readouterr().out
    assert "dice" in out and "iou" in out and "pixel_accuracy" in out
