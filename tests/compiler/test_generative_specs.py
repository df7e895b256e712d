"""The bundled generative specs (autoencoders, VAEs, VQ-VAE + PixelCNN prior, DDPM U-Net): their
interface (input / output names, shapes, dtypes), and their architecture checked against small
hand-written torch references loaded with the spec's weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import engine
from engine.compiler.merge import SPECS_DIR

SMALL_VQ = {"prior_blocks": 2, "prior_width": 32, "prior_embed": 16, "prior_hidden": 64,
            "codes": 32, "dim": 32}
SMALL_UNET = {"base": 16, "groups": 8}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest


def build(name: str, **params) -> nn.Module:
    return engine.build(SPECS_DIR / f"{name}.yaml", **params)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def load_and_eval(ref: nn.Module, net: nn.Module) -> nn.Module:
    """Load the spec's weights into the reference by name (strict), both in eval mode."""
    ref.load_state_dict(net.state_dict(), strict=True)
    net.eval()
    return ref.eval()


# ---- interface: every spec at 28x28 and at 8x8 ------------------------------------------------

@pytest.mark.parametrize("size", [28, 8])
@pytest.mark.parametrize("name", ["ae_conv", "ae_linear"])
def test_autoencoders_map_image_to_code_and_back(name, size):
    m = build(name, image_size=size)
    assert isinstance(m, nn.ModuleDict) and set(m) == {"encoder", "decoder"}
    x = torch.rand(3, 1, size, size)
    code = m["encoder"](x)
    assert code.shape == (3, 10)
    image = m["decoder"](code)
    assert image.shape == x.shape and image.min() >= 0 and image.max() <= 1


@pytest.mark.parametrize("size", [28, 8])
@pytest.mark.parametrize("name", ["vae", "vae_conv", "cvae"])
def test_vaes_give_mean_logvar_and_a_sample(name, size):
    m = build(name, image_size=size)
    x = torch.rand(3, 1, size, size)
    inputs = (x, torch.tensor([0, 3, 9])) if name == "cvae" else (x,)
    out = m["encoder"](*inputs)
    assert set(out) == {"mean", "logvar", "z"}
    assert all(v.shape == (3, 10) for v in out.values())
    assert not torch.equal(out["z"], out["mean"])  # training: a sample
    m.eval()
    out = m["encoder"](*inputs)
    torch.testing.assert_close(out["z"], out["mean"])  # eval: the mean
    args = (out["z"], torch.tensor([0, 3, 9])) if name == "cvae" else (out["z"],)
    image = m["decoder"](*args)
    assert image.shape == x.shape and image.min() >= 0 and image.max() <= 1


@pytest.mark.parametrize("size", [28, 8])
def test_vqvae_networks_and_their_shapes(size):
    m = build("vqvae", image_size=size, **SMALL_VQ)
    assert set(m) == {"encoder", "decoder", "prior"}
    g = size // 4
    out = m["encoder"](torch.rand(2, 1, size, size))
    assert set(out) == {"quantized", "indices", "vq_loss"}
    assert out["quantized"].shape == (2, 32, g, g)
    assert out["indices"].shape == (2, g, g) and out["indices"].dtype == torch.long
    assert out["vq_loss"].dim() == 0
    assert m["decoder"](out["quantized"]).shape == (2, 1, size, size)
    logits = m["prior"](out["indices"])
    assert logits.shape == (2, 32, g, g)


def test_vqvae_defaults_are_the_papers():
    m = build("vqvae")
    assert m["encoder"].vq.codebook.weight.shape == (512, 256)
    assert m["encoder"].vq.straight_through and m["encoder"].vq.beta == 0.25
    assert len(list(m["prior"].blocks.children())) == 15
    assert m["prior"].embed.weight.shape == (512, 128)
    assert m["prior"](torch.zeros(1, 7, 7, dtype=torch.long)).shape == (1, 512, 7, 7)
    assert not build("vqvae", straight_through=False)["encoder"].vq.straight_through


@pytest.mark.parametrize("size, params", [(28, {}), (8, SMALL_UNET)])
def test_unet_predicts_noise_of_the_input_shape(size, params):
    m = build("ddpm_unet", image_size=size, **params)
    x = torch.randn(2, 1, size, size)
    eps = m(x, torch.tensor([1, 999]))
    assert eps.shape == x.shape


# ---- references ---------------------------------------------------------------------------

class ConvBNReLU(nn.Sequential):
    def __init__(self, cin, cout, layer=nn.Conv2d, **kw):
        super().__init__()
        self.conv, self.bn, self.relu = layer(cin, cout, 3, **kw), nn.BatchNorm2d(cout), nn.ReLU()


class AEConvEncoder(nn.Module):
    def __init__(self, c=1, latent=10):
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(c, 16, 3), nn.ReLU()
        self.stage2, self.stage3 = ConvBNReLU(16, 32), ConvBNReLU(32, 64)
        self.head = nn.Linear(64, latent)

    def forward(self, x):
        h = self.stage3(self.stage2(self.relu1(self.conv1(x))))
        return self.head(h.mean((2, 3)))


class AEConvDecoder(nn.Module):
    def __init__(self, s, c=1, latent=10):
        super().__init__()
        self.s = s - 6
        self.fc1, self.fc2 = nn.Linear(latent, 64), nn.Linear(64, 64 * self.s ** 2)
        self.stage1 = ConvBNReLU(64, 32, nn.ConvTranspose2d)
        self.stage2 = ConvBNReLU(32, 16, nn.ConvTranspose2d)
        self.conv = nn.ConvTranspose2d(16, c, 3)

    def forward(self, z):
        h = self.fc2(self.fc1(z)).view(-1, 64, self.s, self.s)
        return torch.sigmoid(self.conv(self.stage2(self.stage1(h))))


@pytest.mark.parametrize("size", [28, 8])
def test_ae_conv_equals_a_hand_written_autoencoder(size):
    m = build("ae_conv", image_size=size)
    enc = load_and_eval(AEConvEncoder(), m["encoder"])
    dec = load_and_eval(AEConvDecoder(size), m["decoder"])
    assert n_params(m["encoder"]) == n_params(enc) and n_params(m["decoder"]) == n_params(dec)
    x = torch.rand(4, 1, size, size)
    with torch.no_grad():
        torch.testing.assert_close(m["encoder"](x), enc(x))
        z = torch.randn(4, 10)
        torch.testing.assert_close(m["decoder"](z), dec(z))


def test_ae_conv_at_28_has_the_seed_sizes_without_its_bug():
    m = build("ae_conv")
    assert m["decoder"].fc2.out_features == 64 * 22 * 22  # the seed wrote 64 * 25 * 25
    assert n_params(m) == 2_061_611


class Dense(nn.Module):
    def __init__(self, cin, cout, act):
        super().__init__()
        self.fc, self.act = nn.Linear(cin, cout), act


def mlp(sizes, act):
    return nn.Sequential(*[Dense(a, b, act) for a, b in zip(sizes, sizes[1:])])


def run_mlp(seq, x):
    for layer in seq:
        x = layer.act(layer.fc(x))
    return x


def test_vae_equals_a_hand_written_vae():
    m = build("vae").eval()
    act = nn.LeakyReLU(0.2)
    enc = nn.Module()
    enc.hidden, enc.head = mlp([784, 512, 128, 32], act), nn.Linear(32, 20)
    dec = nn.Module()
    dec.hidden, dec.fc = mlp([10, 32, 128, 512], act), nn.Linear(512, 784)
    load_and_eval(enc, m["encoder"])
    load_and_eval(dec, m["decoder"])
    assert n_params(m["encoder"]) == n_params(enc) and n_params(m["decoder"]) == n_params(dec)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        mean, logvar = enc.head(run_mlp(enc.hidden, x.flatten(1))).chunk(2, 1)
        out = m["encoder"](x)
        torch.testing.assert_close(out["mean"], mean)
        torch.testing.assert_close(out["logvar"], logvar)
        image = torch.sigmoid(dec.fc(run_mlp(dec.hidden, mean))).view(3, 1, 28, 28)
        torch.testing.assert_close(m["decoder"](out["z"]), image)
    m.train()  # the sample is mean + exp(logvar / 2) * eps
    torch.manual_seed(1)
    z = m["encoder"](x)["z"]
    torch.manual_seed(1)
    torch.testing.assert_close(z, mean + torch.exp(0.5 * logvar) * torch.randn_like(mean))


def test_ae_linear_sizes():
    m = build("ae_linear")
    enc = [mod.out_features for mod in m["encoder"].modules() if isinstance(mod, nn.Linear)]
    dec = [mod.out_features for mod in m["decoder"].modules() if isinstance(mod, nn.Linear)]
    assert enc == [256, 128, 64, 10] and dec == [64, 128, 256, 784]
    sizes = [784, 256, 128, 64, 10]
    assert n_params(m) == 2 * sum(a * b for a, b in zip(sizes, sizes[1:])) + 2 * sum(sizes[1:]) \
        - 10 + 784


def test_vae_conv_and_cvae_share_the_conv_autoencoder_body():
    ae, vae, cvae = build("ae_conv"), build("vae_conv"), build("cvae")
    body = {k: v.shape for k, v in ae["encoder"].state_dict().items() if not k.startswith("head")}
    for m in (vae, cvae):
        assert {k: v.shape for k, v in m["encoder"].state_dict().items()
                if not k.startswith("head")} == body
        assert m["encoder"].head.out_features == 20
    assert vae["encoder"].head.in_features == 64 and cvae["encoder"].head.in_features == 64 + 10
    assert {k: v.shape for k, v in vae["decoder"].state_dict().items()} == \
        {k: v.shape for k, v in ae["decoder"].state_dict().items()}


def test_cvae_encoder_sees_the_label():
    encoder = build("cvae")["encoder"].eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        a, b = encoder(x, torch.tensor([1, 7])), encoder(x, torch.tensor([2, 7]))
    assert not torch.allclose(a["mean"][0], b["mean"][0])
    torch.testing.assert_close(a["mean"][1], b["mean"][1])


def test_cvae_decoder_reads_z_beside_the_one_hot_label():
    m = build("cvae").eval()
    dec = m["decoder"]
    z, labels = torch.randn(2, 10), torch.tensor([1, 7])
    with torch.no_grad():
        a, b = dec(z, labels), dec(z, torch.tensor([2, 7]))
        assert not torch.allclose(a[0], b[0]) and torch.equal(a[1], b[1])
        # the ae_conv decoder with a 20-input first layer, fed [z, one_hot(label)]
        ae = build("ae_conv", latent=20).eval()
        ae["decoder"].load_state_dict(dec.state_dict(), strict=True)
        torch.testing.assert_close(a, ae["decoder"](torch.cat([z, F.one_hot(labels, 10)], 1)))


# ---- VQ-VAE -------------------------------------------------------------------------------

class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 1), nn.BatchNorm2d(c)

    def forward(self, x):
        return x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))


class Down(nn.Module):
    def __init__(self, cin, cout, layer=nn.Conv2d):
        super().__init__()
        self.conv, self.bn = layer(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class VQEncoder(nn.Module):
    def __init__(self, dim, codes, beta=0.25):
        super().__init__()
        self.down1, self.down2 = Down(1, 64), Down(64, dim)
        self.res = nn.Sequential(Residual(dim), Residual(dim))
        self.vq = nn.Module()
        self.vq.codebook = nn.Embedding(codes, dim)
        self.beta = beta

    def forward(self, x):
        e = self.res(self.down2(self.down1(x)))
        flat = e.permute(0, 2, 3, 1).reshape(-1, e.shape[1])
        idx = torch.cdist(flat, self.vq.codebook.weight).argmin(1)
        q = self.vq.codebook.weight[idx].view(e.shape[0], e.shape[2], e.shape[3], -1)
        q = q.permute(0, 3, 1, 2)
        loss = F.mse_loss(q, e.detach()) + self.beta * F.mse_loss(e, q.detach())
        return q, idx.view(e.shape[0], e.shape[2], e.shape[3]), loss


class VQDecoder(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.res = nn.Sequential(Residual(dim), Residual(dim))
        self.up1 = Down(dim, 64, nn.ConvTranspose2d)
        self.up2 = nn.ConvTranspose2d(64, 1, 4, 2, 1)

    def forward(self, q):
        return torch.sigmoid(self.up2(self.up1(self.res(q))))


class Masked(nn.Conv2d):
    def __init__(self, cin, cout, k, kind):
        super().__init__(cin, cout, k, padding=k // 2)
        # pixel (di, dj) of the kernel is kept iff it comes before the centre in raster order
        # (or is the centre, for mask B)
        c = k // 2
        keep = [[(i, j) < (c, c) or (kind == "B" and (i, j) == (c, c)) for j in range(k)]
                for i in range(k)]
        self.register_buffer("keep", torch.tensor(keep, dtype=torch.float32), persistent=False)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.keep, self.bias, padding=self.padding)


class PixelCNNBlock(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(w, w // 2, 1), nn.BatchNorm2d(w // 2)
        self.conv2, self.bn2 = Masked(w // 2, w // 2, 3, "B"), nn.BatchNorm2d(w // 2)
        self.conv3, self.bn3 = nn.Conv2d(w // 2, w, 1), nn.BatchNorm2d(w)

    def forward(self, x):
        h = self.bn1(self.conv1(F.relu(x)))
        h = self.bn2(self.conv2(F.relu(h)))
        return x + self.bn3(self.conv3(F.relu(h)))


class PixelCNN(nn.Module):
    def __init__(self, codes, embed, width, blocks, hidden):
        super().__init__()
        self.embed = nn.Embedding(codes, embed)
        self.conv_a, self.bn_a = Masked(embed, width, 7, "A"), nn.BatchNorm2d(width)
        self.blocks = nn.Sequential(*[PixelCNNBlock(width) for _ in range(blocks)])
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(width, hidden, 1), nn.BatchNorm2d(hidden),
                                  nn.ReLU(), nn.Conv2d(hidden, codes, 1))

    def forward(self, idx):
        h = self.bn_a(self.conv_a(self.embed(idx).permute(0, 3, 1, 2)))
        return self.head(self.blocks(h))


def randomise_batchnorm(module: nn.Module) -> None:
    """Non-trivial running statistics, so that eval-mode comparisons exercise them."""
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)


def test_vqvae_default_parameter_counts_equal_the_references():
    m = build("vqvae")
    assert n_params(m["encoder"]) == n_params(VQEncoder(256, 512))
    assert n_params(m["decoder"]) == n_params(VQDecoder(256))
    assert n_params(m["prior"]) == n_params(PixelCNN(512, 128, 256, 15, 1024))


@pytest.mark.parametrize("size", [28, 8])
def test_vqvae_encoder_and_decoder_equal_the_references(size):
    m = build("vqvae", image_size=size, **SMALL_VQ)
    randomise_batchnorm(m)
    enc = load_and_eval(VQEncoder(32, 32), m["encoder"])
    dec = load_and_eval(VQDecoder(32), m["decoder"])
    with torch.no_grad():
        m["encoder"].vq.codebook.weight.normal_()  # codes at the encoder's scale
        enc.vq.codebook.weight.copy_(m["encoder"].vq.codebook.weight)
        x = torch.rand(2, 1, size, size)
        out = m["encoder"](x)
        q, idx, loss = enc(x)
        torch.testing.assert_close(out["indices"], idx)
        torch.testing.assert_close(out["quantized"], q)
        torch.testing.assert_close(out["vq_loss"], loss)
        torch.testing.assert_close(m["decoder"](q), dec(q))


def test_pixelcnn_prior_equals_the_reference():
    m = build("vqvae", **SMALL_VQ)
    prior = m["prior"]
    randomise_batchnorm(prior)
    ref = load_and_eval(PixelCNN(32, 16, 32, 2, 64), prior)
    assert n_params(prior) == n_params(ref)
    idx = torch.randint(0, 32, (3, 7, 7))
    with torch.no_grad():
        torch.testing.assert_close(prior(idx), ref(idx))


def test_pixelcnn_prior_is_causal_in_raster_order():
    prior = build("vqvae", **SMALL_VQ)["prior"].eval()  # batch norm in train mode mixes positions
    seen = {}
    prior.embed.register_forward_hook(lambda mod, inp, out: seen.update(e=out))
    idx = torch.randint(0, 32, (1, 7, 7))
    logits = prior(idx)
    for p in range(49):
        i, j = divmod(p, 7)
        (grad,) = torch.autograd.grad(logits[0, :, i, j].sum(), seen["e"], retain_graph=True)
        reach = grad[0].abs().sum(-1).flatten()  # per input position, raster order
        assert torch.all(reach[p:] == 0), f"logits at {p} see input positions >= {p}"
        # the left and upper neighbours are seen (the test is not vacuous); the end of the row
        # above may not be: the plain PixelCNN's blind spot
        assert j == 0 or reach[p - 1] > 0
        assert i == 0 or reach[p - 7] > 0


# ---- DDPM U-Net -----------------------------------------------------------------------------

def test_unet_depends_on_t_and_on_x():
    m = build("ddpm_unet", image_size=8, **SMALL_UNET)
    x = torch.randn(2, 1, 8, 8)
    t = torch.tensor([10, 10])
    with torch.no_grad():
        a = m(x, t)
        assert not torch.allclose(a, m(x, torch.tensor([11, 10])))
        assert not torch.allclose(a, m(x + 0.1, t))
        b = m(x, torch.tensor([500, 10]))
        torch.testing.assert_close(a[1], b[1])  # samples are independent
        assert not torch.allclose(a[0], b[0])


def resblock_plan(base, mult, n):
    """(in, out) channels of every ResBlock of the seed's U-Net in forward order."""
    down, skips, ch = [], [], base
    for k in mult:
        for _ in range(n):
            down.append((ch, base * k))
            ch = base * k
            skips.append(ch)
    middle = [(ch, ch)]
    up = []
    for level in reversed(range(len(mult))):
        ch = base * mult[level]  # the upsampling conv brings the channels to the level's
        for _ in range(n):
            up.append((ch + skips.pop(), ch))
    return down + middle + up


@pytest.mark.parametrize("mult, n", [([1, 2, 4], 2), ([1, 2], 1), ([1, 1, 2, 2], 3)])
def test_unet_resblocks_follow_the_seed_plan(mult, n):
    m = build("ddpm_unet", ch_mult=mult, num_res_blocks=n, **SMALL_UNET, image_size=16)
    plan = []
    for name, mod in m.named_modules():
        if hasattr(mod, "film"):  # a ResBlock
            plan.append((name, mod.conv1.in_channels, mod.conv1.out_channels))
    # module registration order is forward order: down blocks outermost first, then the middle;
    # an up block is registered after everything deeper, so the deepest up block comes first
    order = [p for p in plan if p[0].endswith("down")]
    order += [p for p in plan if p[0].endswith("middle")]
    order += [p for p in plan if p[0].endswith("up")]
    assert [(cin, cout) for _, cin, cout in order] == resblock_plan(16, mult, n)
    x = torch.randn(1, 1, 16, 16)
    assert m(x, torch.tensor([5])).shape == x.shape


def test_unet_seed_size_and_optional_attention():
    assert n_params(build("ddpm_unet")) == 10_691_393
    plain = build("ddpm_unet", image_size=8, **SMALL_UNET)
    attn = build("ddpm_unet", image_size=8, attention=[2], **SMALL_UNET)
    kinds = [type(mod).__name__ for mod in attn.modules()]
    assert kinds.count("SelfAttention2d") == 2 + 1 + 2  # after each level-2 ResBlock
    assert "SelfAttention2d" not in [type(mod).__name__ for mod in plain.modules()]
    x = torch.randn(2, 1, 8, 8)
    assert attn(x, torch.tensor([1, 2])).shape == x.shape


def ref_resblock(block, h, temb, groups):
    """The seed's ResBlock in functional form, with the spec block's weights."""
    out = F.conv2d(F.silu(F.group_norm(h, groups, block.norm1.weight, block.norm1.bias)),
                   block.conv1.weight, block.conv1.bias, padding=1)
    scale, shift = F.linear(temb, block.film.linear.weight, block.film.linear.bias).chunk(2, 1)
    out = out * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
    out = F.silu(F.group_norm(out, groups, block.norm2.weight, block.norm2.bias))
    out = F.conv2d(out, block.conv2.weight, block.conv2.bias, padding=1)
    skip = F.conv2d(h, block.skip.weight, block.skip.bias) if hasattr(block, "skip") else h
    return out + skip


@pytest.mark.parametrize("mult, n", [([1, 2, 4], 2), ([1, 2], 3)])
def test_unet_equals_the_seed_forward_with_a_skip_stack(mult, n):
    """The seed's U-Net written as a loop with an explicit stack of skips, on the spec's weights."""
    m = build("ddpm_unet", ch_mult=mult, num_res_blocks=n, image_size=8, **SMALL_UNET).eval()
    get = m.get_submodule
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    half = 32
    freqs = torch.exp(-torch.log(torch.tensor(1e4)) * torch.arange(half) / (half - 1))
    temb = torch.cat([torch.sin(t[:, None] * freqs), torch.cos(t[:, None] * freqs)], 1)
    temb = m.time.fc2(F.silu(m.time.fc1(temb)))
    paths, path = [], "unet"  # paths[l][j]: the level block holding down ResBlock j of level l
    for level in range(len(mult)):
        paths.append([])
        for j in range(n):
            paths[level].append(path)
            path += ".deeper" if j + 1 < n else ".inner"
    with torch.no_grad():
        h, skips = m.stem(x), []
        for level in range(len(mult)):
            for j in range(n):
                h = ref_resblock(get(paths[level][j] + ".down"), h, temb, 8)
                skips.append(h)
            if level + 1 < len(mult):
                h = get(paths[level][-1] + ".downsample")(h)
        h = ref_resblock(get(paths[-1][-1] + ".middle"), h, temb, 8)
        for level in reversed(range(len(mult))):
            if level + 1 < len(mult):
                up = get(paths[level][-1] + ".upsample")
                h = getattr(up, "1")(F.interpolate(h, scale_factor=2, mode="nearest"))
            for j in reversed(range(n)):
                h = ref_resblock(get(paths[level][j] + ".up"), torch.cat([h, skips.pop()], 1),
                                 temb, 8)
        eps = m.out.conv(F.silu(m.out.norm(h)))
        torch.testing.assert_close(m(x, t), eps)
