"""The bundled GAN specs: their interface (network, input and output names, shapes, dtypes,
ranges) and their architecture checked against small hand-written torch references loaded with
the spec's weights (strict), in eval mode."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

import engine
from engine.compiler.merge import SPECS_DIR

B = 4
SMALL = {
    "dcgan": {"g_widths": [16, 8, 4], "d_widths": [4, 8, 16]},
    "gan_mlp": {"g_widths": [8, 16, 32], "d_widths": [32, 16, 8]},
    "cgan": {"g_widths": [16, 8, 4], "d_widths": [4, 8, 16]},
    "cgan_linear": {"g_widths": [8, 16, 32], "d_widths": [32, 16, 8]},
    "lsgan": {"g_widths": [16, 8, 4], "d_widths": [4, 8, 16]},
    "acgan": {"proj_dim": 32, "g_widths": [16, 8, 4], "d_widths": [2, 4, 4, 8, 8, 16]},
    "infogan": {"g_hidden": 32, "g_widths": [16, 8], "d_widths": [4, 8], "d_hidden": 32,
                "q_hidden": 16},
    "ebgan": {"g_widths": [16, 8, 4], "d_widths": [4, 16]},
    "began": {"latent": 8, "width": 8, "d_widths": [8, 16, 24]},
    "sngan": {"g_base": 16, "g_widths": [16, 8, 4], "d_widths": [4, 8, 16], "d_top": 16},
    "sagan": {"g_base": 16, "g_widths": [16, 16, 8], "d_widths": [8, 16, 16], "d_top": 16},
    "stylegan": {"latent": 8, "style": 6, "mapping_layers": 2, "g_channels": [8, 8, 4],
                 "d_channels": [4, 8, 8]},
}
CONDITIONAL = {"cgan", "cgan_linear", "acgan", "sagan"}  # generator takes a label
D_LABEL = {"cgan", "cgan_linear", "sagan"}  # discriminator takes a label


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest


def build(name: str, **params) -> nn.Module:
    return engine.build(SPECS_DIR / f"{name}.yaml", **{**SMALL.get(name, {}), **params})


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def perturb(net: nn.Module) -> nn.Module:
    """Give batch-norm statistics and zero-initialised scalars (attention gamma, noise weights)
    non-trivial values, so an eval-mode comparison exercises them."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, t in list(net.named_buffers()) + list(net.named_parameters()):
            if name.endswith("running_mean"):
                t.normal_(0, 0.1)
            elif name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith("gamma") or name.endswith("noise.weight"):
                t.normal_(0, 0.5)
    return net


def load_and_eval(ref: nn.Module, net: nn.Module) -> nn.Module:
    """Load the spec's weights into the reference by name (strict), both in eval mode."""
    ref.load_state_dict(net.state_dict(), strict=True)
    net.eval()
    return ref.eval()


def close(a, b):
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def seq(**modules) -> nn.Sequential:
    return nn.Sequential(OrderedDict(modules))


# ---- interface: every spec at 28x28 ------------------------------------------------------------

@pytest.mark.parametrize("name", list(SMALL))
def test_gan_interface(name):
    torch.manual_seed(0)
    m = build(name)
    expected = {"generator", "discriminator"} | ({"q"} if name == "infogan" else set())
    assert isinstance(m, nn.ModuleDict) and set(m) == expected
    latent = {"infogan": 74}.get(name, SMALL[name].get("latent", {"sngan": 128, "sagan": 128,
                                                                   "began": 64}.get(name, 100)))
    z = torch.randn(B, latent)
    label = torch.tensor([0, 3, 9, 5])
    g_args = (z, label) if name in CONDITIONAL else (z,)
    image = m["generator"](*g_args)
    assert torch.is_tensor(image) and image.shape == (B, 1, 28, 28) and image.dtype == torch.float32
    if name == "infogan":
        assert image.min() >= 0 and image.max() <= 1
    elif name != "began":
        assert image.min() >= -1 and image.max() <= 1
    d_args = (image, label) if name in D_LABEL else (image,)
    out = m["discriminator"](*d_args)
    if name in ("ebgan", "began"):
        assert set(out) == {"recon", "code"} and out["recon"].shape == image.shape
        assert out["code"].shape == ((B, 16 * 7 * 7) if name == "ebgan" else (B, 8))
    elif name == "acgan":
        assert set(out) == {"score", "classes"}
        assert out["score"].shape == (B, 1) and out["classes"].shape == (B, 10)
    elif name == "infogan":
        assert set(out) == {"score", "features"}
        assert out["score"].shape == (B, 1) and out["features"].shape == (B, 32)
        codes = m["q"](out["features"])
        assert codes.shape == (B, 14)
    else:
        assert torch.is_tensor(out) and out.shape == (B, 1)


def test_default_latents_and_sizes():
    assert engine.build(SPECS_DIR / "infogan.yaml")["q"](torch.randn(2, 1024)).shape == (2, 14)
    g = engine.build(SPECS_DIR / "dcgan.yaml", image_size=32)["generator"]
    assert g(torch.randn(2, 100)).shape == (2, 1, 32, 32)


# ---- DCGAN (and the WGAN critics) --------------------------------------------------------------

def dcgan_ref(latent, gw, dw, norm):
    def up(cin, cout, i):
        k, s, p = [(3, 1, 0), (3, 2, 0), (4, 2, 1)][i]
        return seq(conv=nn.ConvTranspose2d(cin, cout, k, s, p), bn=nn.BatchNorm2d(cout),
                   relu=nn.ReLU())

    def down(cin, cout, i):
        layers = {"conv": nn.Conv2d(cin, cout, 4, 2, 1)}
        if i > 0:
            layers["norm"] = nn.BatchNorm2d(cout) if norm == "batchnorm" else \
                nn.InstanceNorm2d(cout, affine=True)
        return seq(**layers, relu=nn.LeakyReLU(0.2))

    gen = seq(reshape=nn.Unflatten(1, (latent, 1, 1)),
              up=nn.Sequential(*[up(([latent] + gw)[i], gw[i], i) for i in range(3)]),
              conv=nn.ConvTranspose2d(gw[-1], 1, 4, 2, 1), tanh=nn.Tanh())
    disc = seq(down=nn.Sequential(*[down(([1] + dw)[i], dw[i], i) for i in range(3)]),
               conv=nn.Conv2d(dw[-1], 1, 4, 2, 1), flatten=nn.Flatten())
    return gen, disc


@pytest.mark.parametrize("norm", ["batchnorm", "instance_norm"])
def test_dcgan_equals_a_hand_written_dcgan(norm):
    m = perturb(build("dcgan", d_norm=norm))
    gen, disc = dcgan_ref(100, [16, 8, 4], [4, 8, 16], norm)
    load_and_eval(gen, m["generator"]), load_and_eval(disc, m["discriminator"])
    z, x = torch.randn(B, 100), torch.randn(B, 1, 28, 28)
    close(m["generator"](z), gen(z))
    close(m["discriminator"](x), disc(x))


def test_dcgan_parameter_count_is_the_seeds():
    m = engine.build(SPECS_DIR / "dcgan.yaml")
    convt = lambda i, o, k: i * o * k * k + o  # noqa: E731
    g = convt(100, 256, 3) + convt(256, 128, 3) + convt(128, 64, 4) + convt(64, 1, 4) \
        + 2 * (256 + 128 + 64)
    d = convt(1, 64, 4) + convt(64, 128, 4) + convt(128, 256, 4) + convt(256, 1, 4) + 2 * (128 + 256)
    assert n_params(m["generator"]) == g and n_params(m["discriminator"]) == d
    assert g + d == 1_320_450


# ---- vanilla GAN, LSGAN, ACGAN -----------------------------------------------------------------

def test_gan_mlp_equals_a_hand_written_mlp_gan():
    m = build("gan_mlp")
    gw, dw = SMALL["gan_mlp"]["g_widths"], SMALL["gan_mlp"]["d_widths"]
    gen = seq(hidden=nn.Sequential(*[seq(fc=nn.Linear(i, o), relu=nn.ReLU())
                                     for i, o in zip([100] + gw, gw)]),
              fc=nn.Linear(gw[-1], 784), tanh=nn.Tanh(), reshape=nn.Unflatten(1, (1, 28, 28)))
    disc = seq(flatten=nn.Flatten(),
               hidden=nn.Sequential(*[seq(fc=nn.Linear(i, o), relu=nn.LeakyReLU(0.2))
                                      for i, o in zip([784] + dw, dw)]),
               fc=nn.Linear(dw[-1], 1))
    load_and_eval(gen, m["generator"]), load_and_eval(disc, m["discriminator"])
    z, x = torch.randn(B, 100), torch.randn(B, 1, 28, 28)
    close(m["generator"](z), gen(z))
    close(m["discriminator"](x), disc(x))
    full = engine.build(SPECS_DIR / "gan_mlp.yaml")
    assert n_params(full["generator"]) == 12_928 + 33_024 + 131_584 + 402_192
    assert n_params(full["discriminator"]) == 401_920 + 131_328 + 32_896 + 129


def test_lsgan_discriminator_ends_in_a_bias_free_linear():
    m = perturb(build("lsgan"))
    _, disc = dcgan_ref(100, [16, 8, 4], [4, 8, 16], "batchnorm")
    disc = seq(down=disc.down, flatten=nn.Flatten(), fc=nn.Linear(16 * 3 * 3, 1, bias=False))
    load_and_eval(disc, m["discriminator"])
    x = torch.randn(B, 1, 28, 28)
    close(m["discriminator"](x), disc(x))


def test_acgan_discriminator_equals_a_hand_written_one():
    m = perturb(build("acgan"))
    dw, strides = SMALL["acgan"]["d_widths"], [2, 1, 2, 1, 2, 1]
    blocks = []
    for i, (cin, cout) in enumerate(zip([1] + dw, dw)):
        layers = {"conv": nn.Conv2d(cin, cout, 3, strides[i], 1)}
        if i > 0:
            layers["bn"] = nn.BatchNorm2d(cout)
        blocks.append(seq(**layers, relu=nn.LeakyReLU(0.2), dropout=nn.Dropout(0.5)))
    trunk = seq(down=nn.Sequential(*blocks), flatten=nn.Flatten())
    head, classes = nn.Linear(16 * 16, 1), nn.Linear(16 * 16, 10)
    ref = seq(down=trunk.down, head=head, classes=classes)
    load_and_eval(ref, m["discriminator"])
    x = torch.randn(B, 1, 28, 28)
    out = m["discriminator"](x)
    f = trunk(x)
    close(out["score"], head(f))
    close(out["classes"], classes(f))
    full = engine.build(SPECS_DIR / "acgan.yaml")
    assert n_params(full["discriminator"]) == \
        sum(9 * i * o + o for i, o in zip([1, 16, 32, 64, 128, 256], [16, 32, 64, 128, 256, 512])) \
        + 2 * (32 + 64 + 128 + 256 + 512) + 8192 * 11 + 11


def test_cgan_discriminator_sees_the_label_as_extra_channels():
    m = build("cgan").eval()
    x = torch.randn(2, 1, 28, 28)
    d = m["discriminator"]
    assert getattr(d.down, "0").conv.weight.shape[1] == 1 + 10
    assert not torch.allclose(d(x, torch.tensor([0, 0])), d(x, torch.tensor([1, 1])))


# ---- InfoGAN -----------------------------------------------------------------------------------

def test_infogan_equals_a_hand_written_infogan():
    m = perturb(build("infogan"))
    gen = seq(fc1=nn.Linear(74, 32, bias=False), bn1=nn.BatchNorm1d(32), relu1=nn.ReLU(),
              fc2=nn.Linear(32, 16 * 49), bn2=nn.BatchNorm1d(16 * 49), relu2=nn.ReLU(),
              reshape=nn.Unflatten(1, (16, 7, 7)),
              conv1=nn.ConvTranspose2d(16, 8, 4, 2, 1), bn3=nn.BatchNorm2d(8), relu3=nn.ReLU(),
              conv2=nn.ConvTranspose2d(8, 1, 4, 2, 1), sigmoid=nn.Sigmoid())
    trunk = seq(conv1=nn.Conv2d(1, 4, 4, 2, 1), relu1=nn.LeakyReLU(0.1),
                conv2=nn.Conv2d(4, 8, 4, 2, 1), bn2=nn.BatchNorm2d(8), relu2=nn.LeakyReLU(0.1),
                flatten=nn.Flatten(), fc=nn.Linear(8 * 49, 32), bn3=nn.BatchNorm1d(32),
                relu3=nn.LeakyReLU(0.1))
    head = nn.Linear(32, 1)
    disc = seq(**dict(trunk.named_children()), head=head)
    q = seq(fc=nn.Linear(32, 16), bn=nn.BatchNorm1d(16), relu=nn.LeakyReLU(0.1),
            head=nn.Linear(16, 14))
    for ref, name in [(gen, "generator"), (disc, "discriminator"), (q, "q")]:
        load_and_eval(ref, m[name])
    z, x = torch.randn(B, 74), torch.rand(B, 1, 28, 28)
    close(m["generator"](z), gen(z))
    out = m["discriminator"](x)
    features = trunk(x)
    close(out["features"], features)
    close(out["score"], head(features))
    close(m["q"](features), q(features))


def test_infogan_convs_are_kaiming_normal():
    torch.manual_seed(0)
    w = engine.build(SPECS_DIR / "infogan.yaml")["discriminator"].conv2.weight
    fan_in = w.shape[1] * 16
    assert abs(w.std().item() - math.sqrt(2 / fan_in)) < 0.1 * math.sqrt(2 / fan_in)


# ---- energy-based discriminators ---------------------------------------------------------------

def test_ebgan_discriminator_is_a_conv_autoencoder():
    m = perturb(build("ebgan"))
    ref = seq(down=nn.Sequential(seq(conv=nn.Conv2d(1, 4, 4, 2, 1), relu=nn.LeakyReLU(0.2)),
                                 seq(conv=nn.Conv2d(4, 16, 4, 2, 1), norm=nn.BatchNorm2d(16),
                                     relu=nn.LeakyReLU(0.2))),
              up=nn.Sequential(seq(conv=nn.ConvTranspose2d(16, 4, 4, 2, 1), bn=nn.BatchNorm2d(4),
                                   relu=nn.LeakyReLU(0.2))),
              conv=nn.ConvTranspose2d(4, 1, 4, 2, 1))
    load_and_eval(ref, m["discriminator"])
    x = torch.randn(B, 1, 28, 28)
    out = m["discriminator"](x)
    code = ref.down(x)
    close(out["code"], code.flatten(1))
    close(out["recon"], ref(x))


def began_decoder(latent, width, grid=7):
    def stage(i):
        layers = {"upsample": nn.Upsample(scale_factor=2)} if i > 0 else {}
        return seq(**layers, conv1=nn.Conv2d(width, width, 3, 1, 1), elu1=nn.ELU(),
                   conv2=nn.Conv2d(width, width, 3, 1, 1), elu2=nn.ELU())
    return seq(fc=nn.Linear(latent, width * grid * grid), reshape=nn.Unflatten(1, (width, grid, grid)),
               stage=nn.Sequential(*[stage(i) for i in range(3)]),
               conv=nn.Conv2d(width, 1, 3, 1, 1))


def test_began_networks_equal_hand_written_ones():
    m = build("began")
    dw = SMALL["began"]["d_widths"]

    def stage(i, cin, cout):
        layers = {"down": nn.Conv2d(cin, cout, 3, 2, 1), "elu0": nn.ELU()} if i > 0 else {}
        return seq(**layers, conv1=nn.Conv2d(cout, cout, 3, 1, 1), elu1=nn.ELU(),
                   conv2=nn.Conv2d(cout, cout, 3, 1, 1), elu2=nn.ELU())
    encoder = seq(conv=nn.Conv2d(1, dw[0], 3, 1, 1), elu=nn.ELU(),
                  stage=nn.Sequential(*[stage(i, ([dw[0]] + dw)[i], dw[i]) for i in range(3)]),
                  flatten=nn.Flatten(), fc=nn.Linear(dw[-1] * 49, 8))
    decoder = began_decoder(8, 8)
    disc = seq(**dict(encoder.named_children()), decoder=decoder)
    gen = seq(decoder=began_decoder(8, 8))
    load_and_eval(disc, m["discriminator"]), load_and_eval(gen, m["generator"])
    x, z = torch.randn(B, 1, 28, 28), torch.rand(B, 8) * 2 - 1
    out = m["discriminator"](x)
    close(out["code"], encoder(x))
    close(out["recon"], decoder(encoder(x)))
    close(m["generator"](z), gen(z))


def test_began_starts_from_glorot_uniform_weights_and_zero_biases():
    m = engine.build(SPECS_DIR / "began.yaml")  # full size: the fans the recipe trains with
    layers = [mod for mod in m.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 2 * 8 + 10  # two decoders of 8, an encoder of 10 (with its fc)
    for layer in layers:
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
        bound = math.sqrt(6 / (fan_in + fan_out))  # Glorot & Bengio (2010), uniform
        assert layer.weight.abs().max() <= bound
        assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
        assert layer.bias.eq(0).all()
    # why: with torch's default init the samples' spread across z is ~0.004 at the first step
    torch.manual_seed(0)
    with torch.no_grad():
        images = m["generator"](torch.rand(256, 64) * 2 - 1)
    assert images.std(0).mean() > 0.05


# ---- spectral normalisation: SNGAN, SAGAN ------------------------------------------------------

def test_sngan_discriminator_equals_torch_spectral_norm():
    m = build("sngan")
    dw = SMALL["sngan"]["d_widths"]
    lrelu = lambda: nn.LeakyReLU(0.1)  # noqa: E731
    blocks = [seq(conv1=spectral_norm(nn.Conv2d(cin, cout, 3, 1, 1)), relu1=lrelu(),
                  conv2=spectral_norm(nn.Conv2d(cout, cout, 4, 2, 1)), relu2=lrelu())
              for cin, cout in zip([1] + dw, dw)]
    ref = seq(down=nn.Sequential(*blocks), conv=spectral_norm(nn.Conv2d(dw[-1], 16, 3, 1, 1)),
              relu=lrelu(), flatten=nn.Flatten(), fc=spectral_norm(nn.Linear(16 * 9, 1)))
    ref.load_state_dict(m["discriminator"].state_dict(), strict=True)
    x = torch.randn(B, 1, 28, 28)
    close(m["discriminator"](x), ref(x))  # training: one power iteration from the same u, v
    close(m["discriminator"].fc.parametrizations.weight[0]._u, ref.fc.parametrizations.weight[0]._u)
    m.eval(), ref.eval()
    close(m["discriminator"](x), ref(x))
    w = getattr(m["discriminator"].down, "1").conv2.weight  # the normalised weight: spectral norm ~ 1
    assert abs(torch.linalg.matrix_norm(w.flatten(1), ord=2).item() - 1) < 0.1


class CondBN(nn.Module):
    def __init__(self, c, classes=10):
        super().__init__()
        self.bn, self.embed = nn.BatchNorm2d(c, affine=False), nn.Embedding(classes, 2 * c)

    def forward(self, x, label):
        gamma, beta = self.embed(label).chunk(2, 1)
        return gamma[:, :, None, None] * self.bn(x) + beta[:, :, None, None]


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.query = spectral_norm(nn.Conv2d(c, c // 8, 1))
        self.key = spectral_norm(nn.Conv2d(c, c // 8, 1))
        self.value = spectral_norm(nn.Conv2d(c, c, 1))
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)
        attn = torch.softmax(q @ self.key(x).flatten(2), dim=-1)  # [B, N (query), N (key)]
        out = (self.value(x).flatten(2) @ attn.transpose(1, 2)).reshape(b, c, h, w)
        return self.gamma * out + x


class SAGANGen(nn.Module):
    """SNGAN's generator with the label's embedding concatenated with z, conditional batch norm
    and self-attention after stage 1."""

    def __init__(self, base, gw, latent=128, embed_dim=128):
        super().__init__()
        cins, ks = [base] + gw, [(3, 2, 0), (4, 2, 1), (4, 2, 1)]
        self.embed = nn.Linear(10, embed_dim, bias=False)
        self.fc = nn.Linear(latent + embed_dim, base * 9)
        self.up = nn.ModuleList(
            seq(conv=nn.ConvTranspose2d(cins[i], gw[i], *ks[i]), bn=CondBN(gw[i]),
                **({"attention": Attention(gw[i])} if i == 1 else {}))
            for i in range(3))
        self.conv = nn.Conv2d(gw[-1], 1, 3, 1, 1)

    def forward(self, z, label):
        condition = torch.cat([z, self.embed(F.one_hot(label, 10).float())], 1)
        x = self.fc(condition).reshape(len(z), -1, 3, 3)
        for block in self.up:
            x = F.relu(block.bn(block.conv(x), label))
            x = block.attention(x) if hasattr(block, "attention") else x
        return torch.tanh(self.conv(x))


class SAGANDisc(nn.Module):
    """SNGAN's discriminator with self-attention after stage 0 and the projection term."""

    def __init__(self, dw, top):
        super().__init__()
        self.down = nn.ModuleList(
            seq(conv1=spectral_norm(nn.Conv2d(cin, cout, 3, 1, 1)),
                conv2=spectral_norm(nn.Conv2d(cout, cout, 4, 2, 1)),
                **({"attention": Attention(cout)} if i == 0 else {}))
            for i, (cin, cout) in enumerate(zip([1] + dw, dw)))
        self.conv = spectral_norm(nn.Conv2d(dw[-1], top, 3, 1, 1))
        self.fc = spectral_norm(nn.Linear(top * 9, 1))
        self.projection = spectral_norm(nn.Embedding(10, top))

    def forward(self, x, label):
        for block in self.down:
            x = F.leaky_relu(block.conv2(F.leaky_relu(block.conv1(x), 0.1)), 0.1)
            x = block.attention(x) if hasattr(block, "attention") else x
        h = F.leaky_relu(self.conv(x), 0.1)
        proj = (F.embedding(label, self.projection.weight) * h.sum((2, 3))).sum(1, keepdim=True)
        return self.fc(h.flatten(1)) + proj


def test_sagan_equals_a_hand_written_sagan():
    m = perturb(build("sagan"))
    with torch.no_grad():  # per-class gammas and betas away from (1, 0)
        for name, p in m.named_parameters():
            if name.endswith("embed.weight"):
                p.normal_(1, 0.3)
    small = SMALL["sagan"]
    gen = SAGANGen(small["g_base"], small["g_widths"])
    disc = SAGANDisc(small["d_widths"], small["d_top"])
    load_and_eval(gen, m["generator"]), load_and_eval(disc, m["discriminator"])
    z, x, label = torch.randn(B, 128), torch.randn(B, 1, 28, 28), torch.tensor([0, 3, 9, 3])
    close(m["generator"](z, label), gen(z, label))
    close(m["discriminator"](x, label), disc(x, label))


# ---- StyleGAN ----------------------------------------------------------------------------------

def test_stylegan_mapping_equals_a_hand_written_mapping():
    m = build("stylegan")
    mapping = m["generator"].mapping
    z = torch.randn(B, 8)
    x = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)
    for i in range(2):
        layer = getattr(mapping.layers, str(i)).fc
        w, b = layer.weight, layer.bias
        assert w.shape == (6, 8 if i == 0 else 6)  # latent 8 -> style 6: the seed's bug fixed
        x = F.leaky_relu(F.linear(x, w * math.sqrt(2 / w.shape[1]) * 0.01, b * 0.01), 0.2)
    close(mapping(z), x)


def test_stylegan_generator_is_deterministic_without_noise():
    m = build("stylegan", mixing_prob=0.0)
    g = m["generator"]
    z = torch.randn(B, 8)
    assert g(z).shape == (B, 1, 28, 28)
    noises = [p for n, p in g.named_parameters() if n.endswith("noise.weight")]
    assert len(noises) == 2 + 2 * 2  # two AdaIN layers at the constant's size, two per block
    assert all(p.abs().sum() == 0 for p in noises)  # noise starts switched off
    close(g(z), g(z))
    with torch.no_grad():
        for p in noises:
            p.fill_(0.5)
    assert not torch.allclose(g(z), g(z))
    assert m["discriminator"](g(z)).shape == (B, 1)
    big = engine.build(SPECS_DIR / "stylegan.yaml", **{**SMALL["stylegan"], "image_size": 32,
                                                        "const_size": 4,
                                                        "g_channels": [8, 8, 8, 4]})
    image = big["generator"](z)
    assert image.shape == (B, 1, 32, 32) and big["discriminator"](image).shape == (B, 1)


def test_stylegan_each_adain_reads_its_own_layer_of_styles():
    """Six style inputs (two per resolution): styles that differ only at layer k change only
    the AdaIN that reads layer k, seen in the image; the same styles give the same image."""
    g = build("stylegan")["generator"].eval()
    selects = sorted(m.index for m in g.modules() if type(m).__name__ == "Select")
    assert selects == list(range(6))
    styles_block = g.styles
    z = torch.randn(B, 8)
    base = torch.randn(B, 6, 6)

    def draw(styles):
        handle = styles_block.register_forward_hook(lambda *_: styles)
        try:
            return g(z)
        finally:
            handle.remove()
    close(draw(base), draw(base.clone()))
    for k in range(6):
        changed = base.clone()
        changed[:, k] += 1.0
        assert not torch.allclose(draw(changed), draw(base), atol=1e-4), k


def test_stylegan_truncation_pulls_every_sample_to_the_tracked_average():
    """Training tracks the average w; in eval psi 0 gives every z the same image (noise is off
    at init), psi 1 (the default) leaves samples apart, and the tracked average is the EMA of
    the mapping's batch means."""
    torch.manual_seed(0)
    g = build("stylegan", mixing_prob=0.0, w_avg_beta=0.5)["generator"]
    z1, z2 = torch.randn(B, 8), torch.randn(B, 8)
    g(z1)
    g(z2)
    with torch.no_grad():
        want = 0.25 * g.mapping(z1).mean(0) + 0.5 * g.mapping(z2).mean(0)
    close(g.styles.w_avg, want)
    g.eval()
    a = g(torch.randn(B, 8))
    assert (a - a[:1]).abs().amax() > 1e-3  # samples differ
    g.styles.psi = 0.0
    a = g(torch.randn(B, 8))
    close(a, a[:1].expand_as(a))
