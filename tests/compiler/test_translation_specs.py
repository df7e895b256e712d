"""The translation specs (CycleGAN, Pix2Pix, U-Net): interfaces, and each network against a small
hand-written torch reference loaded with the spec's weights (strict, by name)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import engine
from engine.compiler.merge import SPECS_DIR

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest


def build(name: str, **params) -> nn.Module:
    return engine.build(SPECS_DIR / f"{name}.yaml", **params)


def part(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def randomize_norms(module: nn.Module) -> None:
    """Batch-norm statistics and affine parameters away from their identity defaults."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


# ---- CycleGAN -------------------------------------------------------------------------------

def c7s1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 7, padding=3, padding_mode="reflect")


class Named(nn.Module):
    def __init__(self, conv: nn.Module):
        super().__init__()
        self.conv = conv


class RefResidual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, padding_mode="reflect")
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, padding_mode="reflect")

    def forward(self, x):
        h = F.relu(F.instance_norm(self.conv1(x)))
        return x + F.instance_norm(self.conv2(h))


class RefResnetGenerator(nn.Module):
    """Johnson et al.'s generator as in CycleGAN's appendix 7.2 (c7s1-k, dk, Rk, uk, c7s1-3)."""

    def __init__(self, c: int, ngf: int, blocks: int):
        super().__init__()
        self.stem = Named(c7s1(c, ngf))
        self.down1 = Named(nn.Conv2d(ngf, 2 * ngf, 3, 2, 1))
        self.down2 = Named(nn.Conv2d(2 * ngf, 4 * ngf, 3, 2, 1))
        self.blocks = nn.ModuleList([RefResidual(4 * ngf) for _ in range(blocks)])
        self.up1 = Named(nn.ConvTranspose2d(4 * ngf, 2 * ngf, 3, 2, 1, output_padding=1))
        self.up2 = Named(nn.ConvTranspose2d(2 * ngf, ngf, 3, 2, 1, output_padding=1))
        self.to_rgb = c7s1(ngf, c)

    def forward(self, x):
        for layer in (self.stem, self.down1, self.down2):
            x = F.relu(F.instance_norm(layer.conv(x)))
        for block in self.blocks:
            x = block(x)
        for layer in (self.up1, self.up2):
            x = F.relu(F.instance_norm(layer.conv(x)))
        return torch.tanh(self.to_rgb(x))


class RefPatchGAN(nn.Module):
    """C64-C128-...: 4x4 convs, stride 2 then 1, a norm after all but the first, leaky 0.2."""

    def __init__(self, cin: int, ndf: int, layers: int, norm: str):
        super().__init__()
        self.norm = norm
        bias = norm == "instance"
        width = [ndf * min(2 ** i, 8) for i in range(layers + 1)]
        self.first = nn.Conv2d(cin, ndf, 4, 2, 1)
        self.layers = nn.ModuleList()
        for i in range(1, layers):
            self.layers.append(self.layer(width[i - 1], width[i], 2, bias))
        self.last = self.layer(width[layers - 1], width[layers], 1, bias)
        self.logits = nn.Conv2d(width[layers], 1, 4, 1, 1)

    def layer(self, cin, cout, stride, bias):
        m = nn.Module()
        m.conv = nn.Conv2d(cin, cout, 4, stride, 1, bias=bias)
        if self.norm == "batch":
            m.norm = nn.BatchNorm2d(cout)
        return m

    def forward(self, x):
        x = F.leaky_relu(self.first(x), 0.2)
        for m in [*self.layers, self.last]:
            h = m.conv(x)
            h = m.norm(h) if self.norm == "batch" else F.instance_norm(h)
            x = F.leaky_relu(h, 0.2)
        return self.logits(x)


def test_cyclegan_networks_match_the_torch_references():
    m = build("cyclegan", image_size=32, ngf=8, ndf=8, res_blocks=2, d_layers=2).eval()
    assert set(m) == {"gen_ab", "gen_ba", "disc_a", "disc_b"}
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    state = m.state_dict()
    for name in ("gen_ab", "gen_ba"):
        ref = RefResnetGenerator(1, 8, 2)
        ref.load_state_dict(part(state, f"{name}.net."), strict=True)
        out = m[name](x)
        assert out.shape == x.shape and out.abs().max() <= 1
        torch.testing.assert_close(out, ref(x))
    for name in ("disc_a", "disc_b"):
        ref = RefPatchGAN(1, 8, 2, "instance")
        ref.load_state_dict(part(state, f"{name}.net."), strict=True)
        torch.testing.assert_close(m[name](x), ref(x))
    # the two generators share the block, not the weights
    assert not torch.equal(state["gen_ab.net.stem.conv.weight"], state["gen_ba.net.stem.conv.weight"])


@pytest.mark.parametrize("size", [28, 32])
def test_cyclegan_works_on_digits(size):
    m = build("cyclegan", image_size=size, ngf=8, ndf=8, res_blocks=2, d_layers=2)
    x = torch.rand(3, 1, size, size)
    assert m["gen_ab"](x).shape == x.shape
    assert m["disc_b"](x).shape[:2] == (3, 1)


def test_cyclegan_paper_size_generator_has_the_reference_parameter_count():
    m = build("cyclegan", image_size=64, channels=3)
    ref = RefResnetGenerator(3, 64, 9)
    # the released code's resnet_9blocks (11,378,179) and basic D (2,764,737) with RGB
    assert sum(p.numel() for p in m["gen_ab"].parameters()) == \
        sum(p.numel() for p in ref.parameters()) == 11_378_179
    assert sum(p.numel() for p in m["disc_a"].parameters()) == 2_764_737


def conv_receptive_field(module: nn.Module) -> int:
    """The receptive field of a chain of convs (in module order): 1 + sum (k - 1) * jump."""
    field, jump = 1, 1
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            field += (m.kernel_size[0] - 1) * jump
            jump *= m.stride[0]
    return field


def test_cyclegan_patchgan_sees_70x70_patches():
    m = build("cyclegan", image_size=128, ngf=8, ndf=8, res_blocks=1)
    assert conv_receptive_field(m["disc_a"]) == 70


# ---- Pix2Pix --------------------------------------------------------------------------------

class RefLevel(nn.Module):
    """One inner level of the Pix2Pix U-Net: leaky, conv, [bn], deeper, relu, convT, bn, [drop], skip."""

    def __init__(self, level: int, depth: int, cin: int, ngf: int, cout: int,
                 dropout_layers: int):
        super().__init__()
        width = ngf * min(2 ** level, 8)
        bottom = level == depth - 1
        self.down = nn.Conv2d(cin, width, 4, 2, 1, bias=bottom)
        self.norm_down = None if bottom else nn.BatchNorm2d(width)
        self.inner = None if bottom else RefLevel(level + 1, depth, width, ngf, width,
                                                  dropout_layers)
        self.up = nn.ConvTranspose2d(width if bottom else 2 * width, cout, 4, 2, 1, bias=False)
        self.norm_up = nn.BatchNorm2d(cout)
        self.dropout = level >= depth - dropout_layers

    def forward(self, x):
        a = F.leaky_relu(x, 0.2)
        h = self.down(a)
        if self.inner is not None:
            h = self.inner(self.norm_down(h))
        h = self.norm_up(self.up(F.relu(h)))
        if self.dropout:
            h = F.dropout(h, 0.5, self.training)
        return torch.cat([a, h], dim=1)


class RefUnetGenerator(nn.Module):
    def __init__(self, cin: int, cout: int, ngf: int, depth: int, dropout_layers: int = 3):
        super().__init__()
        self.down = nn.Conv2d(cin, ngf, 4, 2, 1)
        self.inner = RefLevel(1, depth, ngf, ngf, ngf, dropout_layers)
        self.up = nn.ConvTranspose2d(2 * ngf, cout, 4, 2, 1)

    def forward(self, x):
        return torch.tanh(self.up(F.relu(self.inner(self.down(x)))))


class RefConditionalPatchGAN(RefPatchGAN):
    def forward(self, condition, image):
        return super().forward(torch.cat([condition, image], dim=1))


@pytest.mark.parametrize("size, depth", [(64, 6), (32, 5)])
def test_pix2pix_networks_match_the_torch_references(size, depth):
    m = build("pix2pix", image_size=size, depth=depth, ngf=4, ndf=4, d_layers=2)
    randomize_norms(m)
    m.eval()
    state = m.state_dict()
    gen = RefUnetGenerator(1, 1, 4, depth)
    gen.load_state_dict(part(state, "generator."), strict=True)
    disc = RefConditionalPatchGAN(2, 4, 2, "batch")
    disc.load_state_dict(part(state, "discriminator."), strict=True)
    gen.eval(), disc.eval()
    mask = torch.rand(2, 1, size, size) * 2 - 1
    image = m["generator"](mask)
    assert image.shape == mask.shape and image.abs().max() <= 1
    torch.testing.assert_close(image, gen(mask))
    torch.testing.assert_close(m["discriminator"](condition=mask, image=image),
                               disc(mask, image))


def test_pix2pix_dropout_is_in_the_first_three_decoder_layers():
    m = build("pix2pix", image_size=256, depth=8, ngf=2, ndf=2)
    names = [n for n, mod in m["generator"].named_modules() if isinstance(mod, nn.Dropout)]
    # levels 7 (the bottleneck's decoder layer), 6 and 5: the paper's CD512-CD1024-CD1024
    assert sorted(n.count("inner") for n in names) == [5, 6, 7]
    assert all(mod.p == 0.5 for mod in m["generator"].modules() if isinstance(mod, nn.Dropout))


def test_pix2pix_patchgan_receptive_field_is_70x70():
    """Measured: the input pixels that move one output logit (eval mode: no norm coupling)."""
    m = build("pix2pix", image_size=256, depth=8, ngf=2, ndf=4).eval()
    condition = torch.zeros(1, 1, 256, 256)
    image = torch.zeros(1, 1, 256, 256, requires_grad=True)
    logits = m["discriminator"](condition=condition, image=image)
    assert logits.shape == (1, 1, 30, 30)  # the paper's 30x30 patch map at 256x256
    logits[0, 0, 15, 15].backward()
    rows = image.grad[0, 0].abs().sum(1).nonzero()
    cols = image.grad[0, 0].abs().sum(0).nonzero()
    assert int(rows.max() - rows.min()) + 1 == 70 and int(cols.max() - cols.min()) + 1 == 70


def test_pix2pix_paper_size_networks_have_the_reference_parameter_counts():
    m = build("pix2pix", image_size=256, in_channels=3, out_channels=3)
    ref = RefUnetGenerator(3, 3, 64, 8)
    assert sum(p.numel() for p in m["generator"].parameters()) == \
        sum(p.numel() for p in ref.parameters())


# ---- U-Net (Ronneberger et al.) -------------------------------------------------------------

class RefDoubleConv(nn.Module):
    def __init__(self, cin: int, cout: int, bn: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=not bn)
        self.bn1 = nn.BatchNorm2d(cout) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=not bn)
        self.bn2 = nn.BatchNorm2d(cout) if bn else nn.Identity()

    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class RefUnetLevel(nn.Module):
    def __init__(self, cin: int, widths: list[int], level: int, bn: bool):
        super().__init__()
        width = widths[level]
        self.down = RefDoubleConv(cin, width, bn)
        self.deeper = level + 1 < len(widths)
        if self.deeper:
            self.inner = RefUnetLevel(width, widths, level + 1, bn)
            self.up = nn.ConvTranspose2d(widths[level + 1], width, 2, 2)
            self.fuse = RefDoubleConv(2 * width, width, bn)

    def forward(self, x):
        d = self.down(x)
        if not self.deeper:
            return d
        u = self.up(self.inner(F.max_pool2d(d, 2)))
        return self.fuse(torch.cat([d, u], dim=1))


class RefUnet(nn.Module):
    def __init__(self, cin: int, widths: list[int], classes: int, bn: bool):
        super().__init__()
        self.unet = RefUnetLevel(cin, widths, 0, bn)
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x):
        return self.head(self.unet(x))


@pytest.mark.parametrize("bn", [False, True])
def test_unet_matches_the_torch_reference(bn):
    widths = [4, 8, 16]
    m = build("unet", image_size=32, widths=widths, batch_norm=bn)
    randomize_norms(m)
    m.eval()
    ref = RefUnet(1, widths, 2, bn)
    ref.load_state_dict(m.state_dict(), strict=True)
    ref.eval()
    x = torch.rand(2, 1, 32, 32)
    out = m(x)
    assert out.shape == (2, 2, 32, 32)  # padded convs: the output has the input's size
    torch.testing.assert_close(out, ref(x))


def test_unet_paper_widths_have_the_paper_parameter_count():
    # the paper's network (two classes, 1 input channel; padding adds no weights)
    m = build("unet", image_size=64)
    ref = RefUnet(1, [64, 128, 256, 512, 1024], 2, False)
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in ref.parameters()) \
        == 31_030_658
