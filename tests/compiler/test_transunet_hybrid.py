"""The `transunet_r50` spec, TransUNet with the paper's R50-ViT-B/16 hybrid encoder (Chen et al.,
2021): its output equals a TransUNet written here in plain torch (torchvision's Bottleneck for the
ResNet stages, torch's TransformerEncoderLayer for the ViT, the paper code's decoder blocks)
carrying the engine-built model's weights; its encoder has torchvision resnet50's names and
shapes; at the paper's defaults it has the paper's 105.28 M weights and shapes (on the meta
device); and its ISBI membrane recipe builds the hybrid at 512 and trains and evaluates at CI size."""

from __future__ import annotations

import csv
import math
import re

import pytest
import torch
from torch import Tensor, nn
from torchvision.models import resnet50
from torchvision.models.resnet import Bottleneck

import engine
from engine.cli import main
from engine.compiler.build import build
from engine.compiler.ir import SpecError
from engine.compiler.merge import RECIPES_DIR, SPECS_DIR, load_merged
from engine.views.summary import summarize

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: one thread is fastest

SPEC = SPECS_DIR / "transunet_r50.yaml"
# a small hybrid: 64x64 input (a 4x4 token grid), one or two bottlenecks per stage, a 2-layer ViT
SMALL = dict(image_size=64, in_channels=1, classes=3, root_width=8, widths=[4, 6, 8],
             depths=[1, 2, 2], hidden_dim=16, num_layers=2, num_heads=2, mlp_dim=32, cup_width=12,
             decoder_widths=[10, 8, 6, 4])
# the paper's R50-ViT-B/16 TransUNet (its code's defaults: 224x224 RGB, 9 Synapse classes)
PAPER = dict(image_size=224, in_channels=3, classes=9, root_width=64, widths=[64, 128, 256],
             depths=[3, 4, 9], hidden_dim=768, num_layers=12, num_heads=12, mlp_dim=3072,
             cup_width=512, decoder_widths=[256, 128, 64, 16])


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """The paper code's Conv2dReLU with batch norm: 3x3 conv (no bias), BN, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


def stage(c_in: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """torchvision's ResNet._make_layer: a projection on the first block where the shape changes."""
    def block(c: int, s: int) -> Bottleneck:
        down = None
        if s != 1 or c != planes * 4:
            down = nn.Sequential(nn.Conv2d(c, planes * 4, 1, stride=s, bias=False),
                                 nn.BatchNorm2d(planes * 4))
        return Bottleneck(c, planes, s, down)
    return nn.Sequential(block(c_in, stride), *(block(planes * 4, 1) for _ in range(blocks - 1)))


class DecoderBlock(nn.Module):
    """The paper code's DecoderBlock: 2x bilinear upsample (align_corners), concat the skip if
    any, two conv-BN-ReLU."""

    def __init__(self, c_in: int, c_out: int, c_skip: int):
        super().__init__()
        self.up = nn.UpsamplingBilinear2d(scale_factor=2)
        self.conv1 = conv_bn_relu(c_in + c_skip, c_out)
        self.conv2 = conv_bn_relu(c_out, c_out)

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        x = self.up(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class TransUNet(nn.Module):
    """R50-ViT TransUNet: ResNet stem and three stages, a ViT on the 1/16 map (1x1 patches),
    the cascaded upsampler with the 1/8, 1/4 and 1/2 skips, a 3x3 segmentation head."""

    def __init__(self, image_size, in_channels, classes, root_width, widths, depths, hidden_dim,
                 num_layers, num_heads, mlp_dim, cup_width, decoder_widths):
        super().__init__()
        self.root = nn.Sequential(nn.Conv2d(in_channels, root_width, 7, 2, 3, bias=False),
                                  nn.BatchNorm2d(root_width), nn.ReLU())
        self.pool = nn.MaxPool2d(3, 2, 1)
        outs = [4 * w for w in widths]
        self.stages = nn.ModuleList(stage(c, w, n, s) for c, w, n, s in
                                    zip([root_width, *outs[:2]], widths, depths, [1, 2, 2]))
        self.patch_embeddings = nn.Conv2d(outs[2], hidden_dim, 1)
        self.position_embeddings = nn.Parameter(torch.zeros(1, (image_size // 16) ** 2, hidden_dim))
        self.layers = nn.ModuleList(nn.TransformerEncoderLayer(
            hidden_dim, num_heads, mlp_dim, dropout=0.0, activation="gelu", layer_norm_eps=1e-6,
            batch_first=True, norm_first=True) for _ in range(num_layers))
        self.encoder_norm = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.conv_more = conv_bn_relu(hidden_dim, cup_width)
        skips = [outs[1], outs[0], root_width, 0]
        self.blocks = nn.ModuleList(DecoderBlock(c, w, s) for c, w, s in
                                    zip([cup_width, *decoder_widths[:-1]], decoder_widths, skips))
        self.segmentation_head = nn.Conv2d(decoder_widths[-1], classes, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        half = self.root(x)
        quarter = self.stages[0](self.pool(half))
        eighth = self.stages[1](quarter)
        features = self.stages[2](eighth)
        tokens = self.patch_embeddings(features).flatten(2).transpose(1, 2) + self.position_embeddings
        for layer in self.layers:
            tokens = layer(tokens)
        tokens = self.encoder_norm(tokens)
        x = tokens.transpose(1, 2).reshape(features.shape[0], -1, *features.shape[2:])
        x = self.conv_more(x)
        for block, skip in zip(self.blocks, [eighth, quarter, half, None]):
            x = block(x, skip)
        return self.segmentation_head(x)


# the engine's state_dict names -> the reference's, first match wins
LAYER = r"^vit\.encoder\.layers\.encoder_layer_(\d+)\."  # vit_b16's names -> TransformerEncoderLayer's
RENAME = [
    (r"^conv1\.", "root.0."), (r"^bn1\.", "root.1."),
    (r"^layer(\d)\.", lambda m: f"stages.{int(m[1]) - 1}."),
    (r"^vit\.patch_embed\.", "patch_embeddings."),
    (r"^vit\.encoder\.pos_embedding$", "position_embeddings"),
    (LAYER + r"ln_(\d)\.", r"layers.\1.norm\2."),
    (LAYER + r"self_attention\.", r"layers.\1.self_attn."),
    (LAYER + r"mlp\.0\.", r"layers.\1.linear1."),
    (LAYER + r"mlp\.3\.", r"layers.\1.linear2."),
    (r"^vit\.encoder\.ln\.", "encoder_norm."),
    (r"^conv_more\.conv\.", "conv_more.0."), (r"^conv_more\.bn\.", "conv_more.1."),
    (r"^decoder(\d)\.(conv\d)\.(conv|bn)\.",
     lambda m: f"blocks.{int(m[1]) - 1}.{m[2]}.{0 if m[3] == 'conv' else 1}."),
]


def reference_key(key: str) -> str:
    for pattern, to in RENAME:
        new, n = re.subn(pattern, to, key)
        if n:
            return new
    return key  # segmentation_head: the same name


def calibrate_batch_norms(model: nn.Module, image_size: int, seed: int) -> None:
    """Affine weights away from their 1/0 start, then running statistics of a few random batches
    (as training leaves them), so that eval mode reads both and no layer's ReLUs all die."""
    gen = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
        m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 1, image_size, image_size, generator=gen))
    for m in norms:
        m.momentum = 0.1


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    ours = engine.build(SPEC, **SMALL)
    with torch.no_grad():
        ours.vit.encoder.pos_embedding.normal_(0, 0.5)  # not its std-0.02 start: let it count
    calibrate_batch_norms(ours, SMALL["image_size"], 1)
    ref = TransUNet(**SMALL)
    mapped = {reference_key(k): v for k, v in ours.state_dict().items()}
    ref.load_state_dict(mapped, strict=True)  # every tensor of each has its place in the other
    return ours, ref


def test_the_reference_has_the_engine_models_weights(pair):
    ours, ref = pair
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert len(ours.state_dict()) == len(ref.state_dict())


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_outputs_equal_the_plain_torch_reference(pair, mode):
    ours, ref = pair
    ours.train(mode == "train")
    ref.train(mode == "train")
    x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got, want = ours(x), ref(x)
    assert got.shape == want.shape == (2, 3, 64, 64)
    scale = want.abs().max().item()
    assert (want[0] - want[1]).abs().max() > 0.1 * scale  # the logits depend on the image
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * scale)
    ours.eval()
    ref.eval()


def test_the_encoder_has_torchvision_resnet50s_names_and_shapes():
    # at ResNet-50's own depths (layer3 of 6 blocks) the stem and layer1..layer3 are torchvision's
    with torch.device("meta"):
        theirs = resnet50().state_dict()
    ours = build(engine.analyze(SPEC, {"depths": [3, 4, 6]}), device="meta").state_dict()
    encoder = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.")
    assert {k: tuple(v.shape) for k, v in ours.items() if k.startswith(encoder)} == \
        {k: tuple(v.shape) for k, v in theirs.items() if k.startswith(encoder)}


def test_the_paper_configuration_has_105_28m_weights_on_the_meta_device():
    shaped = engine.analyze(SPEC)  # the spec's defaults are the paper's
    assert {k: shaped.spec.params[k] for k in PAPER} == PAPER
    n = summarize(shaped).params
    # the paper's code (R50-ViT-B/16, 9 classes) has 105.28 M weights, as reported since (Swin-Unet's
    # table); batch norm here where its ResNet has group norm: the same count
    assert n == 105_277_081 and round(n / 1e6, 2) == 105.28
    model = build(shaped, device="meta")
    assert sum(p.numel() for p in model.parameters()) == n
    with torch.device("meta"):
        ref = TransUNet(**PAPER)
        out = model(torch.empty(2, 3, 224, 224))
    assert out.shape == (2, 9, 224, 224) and out.is_meta
    assert sum(p.numel() for p in ref.parameters()) == n
    assert {reference_key(k): tuple(v.shape) for k, v in model.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    vit = model.get_submodule("vit.encoder")
    assert vit.pos_embedding.shape == (1, 14 * 14, 768)
    assert [n for n, _ in vit.layers.named_children()] == [f"encoder_layer_{i}" for i in range(12)]
    assert type(vit.layers.encoder_layer_0).__name__ == "EncoderBlock"  # vit_b16's block


def test_an_image_size_not_divisible_by_16_is_reported_at_the_position_embedding():
    with pytest.raises(SpecError) as err:
        engine.build(SPEC, **{**SMALL, "image_size": 40})  # a 3x3 map at 1/16, a 2x2 grid of positions
    text = str(err.value)
    assert "transunet" in text and "pos_embedding" in text and "shape mismatch" in text


def test_the_membrane_recipe_builds_the_hybrid_at_512():
    recipe = load_merged(RECIPES_DIR / "transunet_r50_membrane.yaml", recipe=True)
    spec = recipe["spec"]
    assert spec["name"] == "transunet_r50"
    sets = dict(spec["set"])
    assert sets["image_size"] == recipe["data"]["args"]["crop"] == 512  # whole sections
    assert sets["depths"] == [3, 4, 9]  # the hybrid's depths at reduced widths
    shaped = engine.analyze(SPEC, sets)
    assert summarize(shaped).params < 4_000_000


def test_the_recipe_trains_and_evaluates_at_ci_size(tmp_path, capsys, data_root_for):
    data_root_for("isbi2012_membrane")  # the shared sections, else tests/tiny_data.py's (a fresh clone)
    ci_sized = ["spec.set.image_size=32", "spec.set.root_width=4", "spec.set.widths=[2,2,2]",
                "spec.set.depths=[1,1,1]", "spec.set.hidden_dim=8", "spec.set.num_heads=2",
                "spec.set.mlp_dim=16", "spec.set.num_layers=1", "spec.set.cup_width=6",
                "spec.set.decoder_widths=[4,3,2,2]", "data.args.crop=32", "data.args.eval_crop=32"]
    steps = ["epochs=null", "steps=2", "data.batch_size=2", "eval.every_epochs=0"]
    sets = [a for s in [*ci_sized, *steps] for a in ("--set", s)]
    assert main(["train", "transunet_r50_membrane", "--device", "cpu", "--output", str(tmp_path),
                 *sets]) == 0
    (folder,) = tmp_path.iterdir()
    with (folder / "metrics.csv").open() as f:
        row = list(csv.DictReader(f))[-1]
    assert row["step"] == "2" and math.isfinite(float(row["train_loss"]))
    capsys.readouterr()
    assert main(["eval", "transunet_r50_membrane", "--checkpoint",
                 str(folder / "checkpoints" / "last.pt"), "--split", "test", "--device", "cpu",
                 *sets]) == 0
    out = capsys.readouterr().out
    assert "dice" in out and "iou" in out and "pixel_accuracy" in out
