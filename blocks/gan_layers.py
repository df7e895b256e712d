"""Layers of GANs: instance and conditional normalisation, SAGAN self-attention,
StyleGAN's equalised-learning-rate layers, noise, AdaIN and constant input, and the
discriminator's projection, sum pooling and minibatch standard deviation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from blocks.registry import register


@register("instance_norm", in_dim=1, same_shape=True,
          example={"args": {"affine": True}, "inputs": [[2, 4, 5, 5]]})
class InstanceNorm(nn.InstanceNorm2d):
    """Instance normalisation (Ulyanov et al., 2016): each image's channels normalised alone.

    [B, C, H, W] -> [B, C, H, W]. Statistics always come from the input (no running
    averages), in training and in eval; `affine: true` adds per-channel `weight` and `bias`.
    """

    def __init__(self, in_size: int, eps: float = 1e-5, affine: bool = False):
        super().__init__(in_size, eps, affine=affine, track_running_stats=False)

    def label(self) -> str:
        return "instance norm"


def _float(x: Tensor) -> Tensor:
    # Blocks that also take class labels may receive every input as integers (a registry
    # example declares one dtype for all its inputs): compute in floating point.
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


@register("conditional_batchnorm", in_dim=1, inputs=2, same_shape=True,
          example={"args": {"classes": 5}, "inputs": [[2, 4, 3, 3], [2]], "dtype": "long"})
class ConditionalBatchNorm(nn.Module):
    """Conditional batch norm (de Vries et al., 2017), as in SAGAN (Zhang et al., 2019).

    [B, C, H, W] (x), [B] (long labels < classes) -> [B, C, H, W]:
    gamma[label] * bn(x) + beta[label], with `bn` a non-affine batch norm and per-class
    (gamma, beta) the two halves of the rows of `embed` [classes, 2C], initialised to (1, 0)
    so that every class starts as a plain batch norm (Miyato & Koyama, 2018).
    """

    def __init__(self, in_size: int, classes: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.classes = classes
        self.bn = nn.BatchNorm2d(in_size, eps, momentum, affine=False)
        self.embed = nn.Embedding(classes, 2 * in_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # runs after `embed`'s own (normal) reset, which it overrides
        c = self.bn.num_features
        with torch.no_grad():
            self.embed.weight[:, :c].fill_(1.0)
            self.embed.weight[:, c:].zero_()

    def label(self) -> str:
        return f"cond. batch norm, {self.classes} classes"

    def forward(self, x: Tensor, label: Tensor) -> Tensor:
        gamma, beta = self.embed(label).chunk(2, dim=1)
        return gamma[:, :, None, None] * self.bn(_float(x)) + beta[:, :, None, None]


@register("pixel_norm", same_shape=True, example={"args": {}, "inputs": [[2, 4, 3, 3]]})
class PixelNorm(nn.Module):
    """Pixelwise feature normalisation (Karras et al., 2018): each position's feature vector
    scaled to unit root mean square over channels.

    [B, C, H, W] -> [B, C, H, W] (or [B, D] -> [B, D]): x / sqrt(mean(x^2 over dim 1) + eps).
    """

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def label(self) -> str:
        return "pixel norm"

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


@register("sagan_attention", in_dim=1, layout=True,
          example={"args": {"reduction": 2, "spectral_norm": True}, "inputs": [[2, 8, 3, 4]]})
class SAGANAttention(nn.Module):
    """Self-attention GAN's attention block (Zhang et al., 2019).

    [B, C, H, W] -> [B, C, H, W]: gamma * attend(x) + x over the N = H*W positions. `query`
    and `key` are 1x1 convs to max(1, C // reduction) channels, `value` a 1x1 conv to C;
    each query position takes a softmax over all key positions (no 1/sqrt(d) scaling, as in
    the paper). `gamma` starts at 0, so the block starts as the identity.
    `spectral_norm: true` wraps the three convs in spectral normalisation, as SAGAN does.
    """

    def __init__(self, in_size: int, reduction: int = 8, spectral_norm: bool = False):
        super().__init__()
        inner = max(1, in_size // reduction)
        self.query = _conv1x1(in_size, inner, spectral_norm)
        self.key = _conv1x1(in_size, inner, spectral_norm)
        self.value = _conv1x1(in_size, in_size, spectral_norm)
        self.gamma = nn.Parameter(torch.zeros(1))

    def reset_parameters(self) -> None:
        for conv in (self.query, self.key, self.value):
            _reset_conv(conv)
        nn.init.zeros_(self.gamma)

    def label(self) -> str:
        return "self-attention (SAGAN)"

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q = self.query(x).reshape(b, -1, h * w).transpose(1, 2)  # [B, N, C']
        k = self.key(x).reshape(b, -1, h * w)  # [B, C', N]
        attn = torch.softmax(torch.bmm(q, k), dim=-1)  # row i: query i over all keys
        v = self.value(x).reshape(b, c, h * w)
        out = torch.bmm(v, attn.transpose(1, 2)).reshape(b, c, h, w)
        return self.gamma * out + x


def _conv1x1(cin: int, cout: int, spectral: bool) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 1)
    return _spectral_norm(conv) if spectral else conv


def _reset_conv(conv: nn.Conv2d) -> None:
    """A conv's default init, also under a spectral-norm parametrization, where the stored
    parameter is `original` and the power iteration's vectors `_u`, `_v` need fresh values."""
    if not parametrize.is_parametrized(conv, "weight"):
        conv.reset_parameters()
        return
    weight = conv.parametrizations.weight.original
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Conv2d's own scheme
    if conv.bias is not None:
        bound = 1 / math.sqrt(weight[0].numel())
        nn.init.uniform_(conv.bias, -bound, bound)
    sn = conv.parametrizations.weight[0]
    with torch.no_grad():
        sn._u.copy_(F.normalize(torch.randn_like(sn._u), dim=0, eps=sn.eps))
        sn._v.copy_(F.normalize(torch.randn_like(sn._v), dim=0, eps=sn.eps))
        sn._power_method(sn._reshape_weight_to_matrix(weight), 15)


@register("equal_linear", in_dim=-1,
          example={"args": {"out": 6, "lr_mul": 0.01}, "inputs": [[2, 8]]})
class EqualLinear(nn.Module):
    """Equalised-learning-rate linear layer (Karras et al., 2018, "Progressive Growing of
    GANs"), with StyleGAN's learning-rate multiplier `lr_mul` (Karras et al., 2019).

    [B, *, D] -> [B, *, out]. `weight` is stored as N(0, 1/lr_mul^2) and scaled at run time
    by gain / sqrt(D) * lr_mul (He's constant), so every weight learns at the same rate under
    Adam; `bias` starts at `bias_init` and is used as bias * lr_mul.
    """

    def __init__(self, in_size: int, out: int, bias: bool = True, lr_mul: float = 1.0,
                 gain: float = 2 ** 0.5, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out, in_size))
        self.bias = nn.Parameter(torch.empty(out)) if bias else None
        self.scale = gain / math.sqrt(in_size) * lr_mul
        self.lr_mul, self.bias_init = lr_mul, bias_init
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, 0.0, 1.0 / self.lr_mul)
        if self.bias is not None:
            nn.init.constant_(self.bias, self.bias_init)

    def label(self) -> str:
        return f"equalised linear, {self.weight.shape[0]}"

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        return F.linear(x, self.weight * self.scale, bias)

    def extra_repr(self) -> str:
        out, d = self.weight.shape
        return f"in={d}, out={out}, scale={self.scale:.4g}, lr_mul={self.lr_mul:g}"


@register("equal_conv", in_dim=1, layout=True,
          example={"args": {"out": 6, "k": 3, "pad": 1}, "inputs": [[2, 4, 5, 5]]})
class EqualConv(nn.Module):
    """Equalised-learning-rate 2-D convolution (Karras et al., 2018).

    [B, C, H, W] -> [B, out, H', W'] with H' = (H + 2*pad - k) // stride + 1. `weight`
    [out, C, k, k] is stored as N(0, 1) and scaled at run time by gain / sqrt(C * k * k);
    `bias` starts at 0.
    """

    def __init__(self, in_size: int, out: int, k: int = 3, stride: int = 1, pad: int = 0,
                 bias: bool = True, gain: float = 2 ** 0.5):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out, in_size, k, k))
        self.bias = nn.Parameter(torch.empty(out)) if bias else None
        self.scale = gain / math.sqrt(in_size * k * k)
        self.stride, self.pad = stride, pad
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def label(self) -> str:
        out, _, k, _ = self.weight.shape
        return f"{k}x{k} equalised conv, {out}"

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.pad)

    def extra_repr(self) -> str:
        out, c, k, _ = self.weight.shape
        return f"{c}, {out}, k={k}, stride={self.stride}, pad={self.pad}, scale={self.scale:.4g}"


@register("noise_injection", in_dim=1, same_shape=True,
          example={"args": {}, "inputs": [[2, 4, 3, 3]]})
class NoiseInjection(nn.Module):
    """StyleGAN's per-pixel noise input (Karras et al., 2019).

    [B, C, H, W] -> [B, C, H, W]: x + weight * noise, one N(0, 1) noise map [B, 1, H, W] per
    image (fresh every call, in eval too) scaled by the per-channel `weight` [1, C, 1, 1],
    which starts at 0.
    """

    def __init__(self, in_size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, in_size, 1, 1))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)

    def label(self) -> str:
        return "noise"

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        noise = torch.randn(b, 1, h, w, device=x.device, dtype=x.dtype)
        return x + self.weight * noise


@register("adain", in_dim=1, inputs=2, same_shape=True,
          example={"args": {"style": 6}, "inputs": [[2, 4, 3, 3], [2, 6]]})
class AdaIN(nn.Module):
    """Adaptive instance normalisation (Huang & Belongie, 2017) as StyleGAN's style input
    (Karras et al., 2019).

    [B, C, H, W] (x), [B, S] (style w) -> [B, C, H, W]: norm(x) * (1 + scale) + shift, with
    `norm` a non-affine instance norm and (scale, shift) per channel from `style`, an
    equalised linear layer S -> 2C (gain 1, bias 0, as StyleGAN's style_mod). C is inferred;
    the style width S is the required `style` argument.
    """

    def __init__(self, in_size: int, style: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.style = EqualLinear(style, 2 * in_size, gain=1.0, bias_init=0.0)

    def label(self) -> str:
        return "AdaIN"

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        scale, shift = self.style(w).chunk(2, dim=1)
        x = F.instance_norm(x, eps=self.eps)
        return x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


@register("constant_input", layout=True,
          example={"args": {"channels": 8, "size": 4}, "inputs": [[3, 6]]})
class ConstantInput(nn.Module):
    """StyleGAN's learned constant input (Karras et al., 2019).

    [B, *] (any tensor; only its batch size B is read, e.g. the style w) ->
    [B, channels, size, size]: the parameter `const` [1, channels, size, size], initialised
    N(0, 1), repeated over the batch.
    """

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.const = nn.Parameter(torch.empty(1, channels, size, size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.const)

    def label(self) -> str:
        _, c, h, w = self.const.shape
        return f"const {c}x{h}x{w}"

    def forward(self, x: Tensor) -> Tensor:
        return self.const.repeat(x.shape[0], 1, 1, 1)


@register("projection", in_dim=1, inputs=2, layout=False,
          example={"args": {"classes": 5}, "inputs": [[2, 4], [2]], "dtype": "long"})
class Projection(nn.Embedding):
    """The class term of the projection discriminator (Miyato & Koyama, 2018).

    [B, C] (features), [B] (long labels < classes) -> [B, 1]: <embed(label), features>, to be
    added to the unconditional logit. The embedding is the parameter `weight` [classes, C]
    (as `nn.Embedding`'s), so spectral normalisation can wrap it.
    """

    def __init__(self, in_size: int, classes: int):
        super().__init__(classes, in_size)

    def label(self) -> str:
        return f"projection, {self.num_embeddings} classes"

    def forward(self, features: Tensor, label: Tensor) -> Tensor:
        # F.embedding (not self.weight[label]) so a parametrization's computed weight is used
        embedded = F.embedding(label, self.weight)
        return (embedded * _float(features)).sum(dim=1, keepdim=True)


@register("global_sum_pool", layout=False, example={"args": {}, "inputs": [[2, 4, 3, 5]]})
class GlobalSumPool(nn.Module):
    """Global sum pooling, as the ResNet discriminators of SNGAN and SAGAN (Miyato et al.,
    2018) end: a sum, not a mean, over positions.

    [B, C, H, W] -> [B, C].
    """

    def label(self) -> str:
        return "sum pool"

    def forward(self, x: Tensor) -> Tensor:
        return x.sum(dim=(2, 3))


@register("minibatch_stddev", layout=True,
          example={"args": {"group": 2}, "inputs": [[4, 3, 4, 4]]})
class MinibatchStddev(nn.Module):
    """Minibatch standard deviation (Karras et al., 2018): a statistic of sample variety
    that lets the discriminator see mode collapse.

    [B, C, H, W] -> [B, C + 1, H, W]. The batch is split into groups of G = min(group, B)
    images (image i in group i mod B/G, as the paper's reshape does; B must be divisible by
    G); the appended channel holds, for each image, its group's per-position standard
    deviation (biased, + 1e-8 under the root) averaged over channels and positions.
    """

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def label(self) -> str:
        return "minibatch stddev"

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        g = min(self.group, b)
        if b % g:
            raise ValueError(f"minibatch_stddev: batch size {b} is not divisible by the group "
                             f"size {g} (min(group={self.group}, batch))")
        y = x.reshape(g, b // g, c, h, w)
        std = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8)  # [B/G, C, H, W]
        stat = std.mean(dim=(1, 2, 3)).repeat(g)  # image i gets its group's, i mod B/G
        return torch.cat([x, stat.view(b, 1, 1, 1).expand(b, 1, h, w)], dim=1)

    def extra_repr(self) -> str:
        return f"group={self.group}"
