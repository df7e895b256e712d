"""Style and conditioning layers of generative models: FiLM, StyleGAN's equalised-learning-rate
layers, AdaIN, noise and constant input, and the GAN discriminator's projection term and
minibatch standard deviation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.blocks.registry import register


@register("film", category="style", in_dim=1, inputs=2,
          example={"args": {"cond": 6}, "inputs": [[2, 4, 5, 5], [2, 6]]})
class FiLM(nn.Module):
    """Feature-wise linear modulation (Perez et al., 2018) of a feature map by a condition.

    [B, C, H, W] (x), [B, D] (cond) -> [B, C, H, W]: a linear layer maps the condition to
    (scale, shift), each [B, C], and out = x * (1 + scale) + shift per channel. C is inferred;
    the condition width D is the required `cond` argument, written in the spec
    (e.g. `cond: ${4 * width}`).
    """

    def __init__(self, in_size: int, cond: int):
        super().__init__()
        self.linear = nn.Linear(cond, 2 * in_size)

    def label(self) -> str:
        return "FiLM"

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.linear(cond).chunk(2, dim=-1)
        return x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


@register("equal_linear", category="style", in_dim=-1,
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


@register("equal_conv", category="style", in_dim=1, layout=True,
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


@register("adain", category="style", in_dim=1, inputs=2, same_shape=True,
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


@register("noise_injection", category="style", in_dim=1, same_shape=True,
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


@register("constant_input", category="style", layout=True,
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


@register("truncation", category="style", in_dim=-1, layout=False,
          example={"args": {"layers": 3, "psi": 0.7, "cutoff": 2}, "inputs": [[2, 6]]})
class Truncation(nn.Module):
    """StyleGAN's per-layer styles and the truncation trick (Karras et al., 2019, sections 2
    and 3.2).

    [B, S] (w) -> [B, layers, S]: w repeated once per style input of the synthesis network,
    so that style mixing can give layers different styles. In training the module tracks the
    average style in the buffer `w_avg` [S] (an exponential moving average of the batch means,
    decay `beta`, 0.995 as the paper) and passes w through. In eval the first `cutoff` layers
    (every layer when null) get w_avg + psi * (w - w_avg): psi 1 (the default) changes
    nothing, psi 0 gives every sample the average style.
    """

    def __init__(self, in_size: int, layers: int, psi: float = 1.0, cutoff: int | None = None,
                 beta: float = 0.995):
        super().__init__()
        if layers < 1:
            raise ValueError(f"truncation: layers must be at least 1, got {layers}")
        self.layers, self.psi, self.cutoff, self.beta = layers, psi, cutoff, beta
        self.register_buffer("w_avg", torch.zeros(in_size))

    def reset_parameters(self) -> None:
        # the engine builds on meta and materialises with to_empty: the buffer is set here
        self.w_avg.zero_()

    def label(self) -> str:
        return f"styles x{self.layers}" + ("" if self.psi == 1 else f", truncation {self.psi:g}")

    def forward(self, w: Tensor) -> Tensor:
        if self.training:
            with torch.no_grad():  # the average is a statistic, not a parameter
                self.w_avg.lerp_(w.detach().mean(0).to(self.w_avg.dtype), 1 - self.beta)
        styles = w.unsqueeze(1).expand(-1, self.layers, -1)
        if self.training or self.psi == 1:
            return styles
        avg = self.w_avg.to(w.dtype)
        truncated = avg + self.psi * (styles - avg)
        cutoff = self.layers if self.cutoff is None else self.cutoff
        return torch.where(layers_before(styles, cutoff), truncated, styles)

    def extra_repr(self) -> str:
        return f"layers={self.layers}, psi={self.psi:g}, cutoff={self.cutoff}, beta={self.beta:g}"


@register("style_mixing", category="style", layout=False, same_shape=True,
          example={"args": {"prob": 1.0}, "inputs": [[4, 6, 5]]})
class StyleMixing(nn.Module):
    """StyleGAN's mixing regularisation (Karras et al., 2019, section 3.1).

    [B, L, S] (per-layer styles) -> [B, L, S]. In training, with probability `prob` per batch
    (0.9 in the paper), a crossover layer c is drawn uniformly from 1..L-1 and layers c..L-1
    take the styles of another sample of the batch (the batch rolled by one), so that the
    synthesis network cannot assume neighbouring styles are correlated. The paper maps a
    second z; another sample's w is a draw from the same distribution through the same
    mapping, without a second pass. The identity in eval, for a batch of one, and for L = 1.
    """

    def __init__(self, prob: float = 0.9):
        super().__init__()
        if not 0 <= prob <= 1:
            raise ValueError(f"style_mixing: prob must be in [0, 1], got {prob}")
        self.prob = prob

    def label(self) -> str:
        return f"style mixing p={self.prob:g}"

    def forward(self, styles: Tensor) -> Tensor:
        b, layers = styles.shape[:2]
        if not self.training or b < 2 or layers < 2 or float(torch.rand(())) >= self.prob:
            return styles
        crossover = int(torch.randint(1, layers, ()))
        return torch.where(layers_before(styles, crossover), styles, styles.roll(1, 0))

    def extra_repr(self) -> str:
        return f"prob={self.prob:g}"


def layers_before(styles: Tensor, cut: int) -> Tensor:
    """[1, L, 1] mask of per-layer styles [B, L, S]: True for the layers before `cut` (the
    coarse ones, nearest the constant input), to pick per layer with torch.where."""
    return torch.arange(styles.shape[1], device=styles.device)[None, :, None] < cut


def _float(x: Tensor) -> Tensor:
    # Blocks that also take class labels may receive every input as integers (a registry
    # example declares one dtype for all its inputs): compute in floating point.
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


@register("projection", category="style", in_dim=1, inputs=2, layout=False,
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


@register("minibatch_stddev", category="style", layout=True,
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
