"""The seed's variants that torchvision does not build by name (issue 26), each an `extends:` of
its family's spec, against an oracle: DenseNet-264 and ConvNeXt-XL against torchvision's own
classes with the papers' settings (the published parameter counts, the same state_dict, and for
DenseNet-264 the same outputs), the paper's AlexNet against a torch.nn model with
LocalResponseNorm, and the seed's CIFAR-size ViT against its post-norm block written in torch."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.models.densenet import DenseNet

import engine
from engine.compiler.build import build
from engine.compiler.load import load_file
from engine.compiler.merge import SPECS_DIR
from engine.views.summary import summarize
from tests.oracle import randomise_batchnorm

# the papers' ImageNet models (1000 classes): DenseNet-264 (k = 32) and ConvNeXt-XL
PUBLISHED = {"densenet264": 33_337_704, "convnext_xlarge": 350_196_968}


def densenet264(**kwargs) -> nn.Module:
    return DenseNet(growth_rate=32, block_config=(6, 12, 64, 48), num_init_features=64, **kwargs)


def convnext_xlarge() -> nn.Module:
    setting = [CNBlockConfig(256, 512, 3), CNBlockConfig(512, 1024, 3),
               CNBlockConfig(1024, 2048, 27), CNBlockConfig(2048, None, 3)]
    return ConvNeXt(setting, stochastic_depth_prob=0.5)


ORACLES = {"densenet264": densenet264, "convnext_xlarge": convnext_xlarge}


@pytest.mark.parametrize("spec", ["densenet264", "convnext_xlarge", "alexnet_paper", "vit_tiny"])
def test_each_variant_extends_its_family_base(spec):
    assert "extends" in load_file(SPECS_DIR / f"{spec}.yaml")


@pytest.mark.parametrize("spec", ORACLES)
def test_parameter_count_and_state_dict_equal_torchvision_and_the_paper(spec):
    with torch.device("meta"):
        ref = ORACLES[spec]()
    want = sum(p.numel() for p in ref.parameters())
    assert want == PUBLISHED[spec]
    shaped = engine.analyze(spec)
    assert summarize(shaped).params == want
    got = build(shaped, device="meta").state_dict()
    assert {k: tuple(v.shape) for k, v in got.items()} == \
        {k: tuple(v.shape) for k, v in ref.state_dict().items()}


def test_densenet264_loads_torchvision_strictly_and_matches_its_outputs():
    torch.manual_seed(0)
    ref = densenet264(num_classes=10).eval()
    randomise_batchnorm(ref)
    model = build(engine.analyze("densenet264", {"num_classes": 10, "image_size": 64})).eval()
    engine.load_reference_state_dict(model, ref.state_dict(), "densenet264", strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got, want = model(x), ref(x)
    assert (got - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())


class PaperAlexNet(nn.Module):
    """The paper's single-tower AlexNet in torch.nn, torchvision's layout with the paper's widths
    and nn.LocalResponseNorm(5, alpha, 0.75, 2) after the first two ReLUs."""

    def __init__(self, num_classes: int = 1000, alpha: float = 5e-4):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4, padding=2), nn.ReLU(), nn.LocalResponseNorm(5, alpha, 0.75, 2.0),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.LocalResponseNorm(5, alpha, 0.75, 2.0),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d(6)
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(256 * 36, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096),
            nn.ReLU(), nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def test_alexnet_paper_has_the_papers_widths_and_response_normalisation():
    torch.manual_seed(0)
    ref = PaperAlexNet(num_classes=10).eval()
    model = build(engine.analyze("alexnet_paper", {"num_classes": 10})).eval()
    model.load_state_dict(ref.state_dict(), strict=True)
    lrn = [model.get_submodule(f"features.{i}") for i in (2, 6)]
    assert all(isinstance(m, nn.LocalResponseNorm) and m.alpha == 5e-4 for m in lrn)
    assert summarize(engine.analyze("alexnet_paper")).params == \
        sum(p.numel() for p in PaperAlexNet().parameters())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        got, want = model(x), ref(x)
    assert (got - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())


def test_vit_tiny_has_the_seeds_sizes():
    shaped = engine.analyze("vit_tiny")
    d, mlp, layers, tokens, classes = 48, 1024, 6, 65, 10
    per_block = (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * mlp + mlp) + (mlp * d + d)
    embed = (3 * 4 * 4 * d + d) + d + tokens * d  # patch conv, class token, positions
    assert summarize(shaped).params == embed + layers * per_block + 2 * d + (d * classes + classes)
    model = build(shaped)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert [n for n, _ in model.encoder.layers.named_children()] == [f"encoder_layer_{i}" for i in range(6)]
    assert model.encoder.layers.encoder_layer_0.self_attention.num_heads == 8


def test_vit_tiny_block_is_post_norm_with_one_shared_norm():
    torch.manual_seed(0)
    block = build(engine.analyze("vit_tiny")).eval().encoder.layers.encoder_layer_0
    assert not any(k.startswith("norm_again") for k in block.state_dict())  # one norm's weights
    attn = nn.MultiheadAttention(48, 8, batch_first=True)
    attn.load_state_dict(block.self_attention.state_dict())
    norm = nn.LayerNorm(48)
    norm.load_state_dict(block.norm.state_dict())
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)  # not the 1/0 default: a second, separate norm would differ
        block.norm.weight.copy_(norm.weight)
    mlp = nn.Sequential(nn.Linear(48, 1024), nn.GELU(), nn.Linear(1024, 48))
    mlp[0].load_state_dict(block.get_submodule("mlp.0").state_dict())
    mlp[2].load_state_dict(block.get_submodule("mlp.3").state_dict())
    x = torch.randn(2, 65, 48)
    with torch.no_grad():
        h = norm(x + attn(x, x, x, need_weights=False)[0])
        want = norm(h + mlp(h))
        torch.testing.assert_close(block(x), want)


def test_squeezenet_head_relu_false_leaves_linear_logits_with_the_same_weights():
    """`head_relu: false` (the MNIST recipe's) drops only the ReLU on the class maps: the same
    state_dict and outputs as torchvision's squeezenet1_1 with that ReLU replaced by Identity."""
    import torchvision
    ref = torchvision.models.squeezenet1_1(num_classes=10).eval()
    ref.classifier[2] = nn.Identity()  # classifier: dropout, final_conv, ReLU, avgpool
    linear = engine.build("squeezenet1_1", num_classes=10, head_relu=False).eval()
    linear.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got, want = linear(x), ref(x)
    assert (got < 0).any()  # no ReLU: negative logits survive
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
