"""Normalisation layers: batch, layer, group, instance, local response, conditional batch and
pixel norm, and the parameter-free L_p normalisation of vectors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.blocks.registry import register


@register("batchnorm", category="norm", same_shape=True, in_dim=1,
          example={"args": {}, "inputs": [[2, 4, 5, 5]]})
class BatchNorm(nn.BatchNorm2d):
    """Batch normalisation over channels (Ioffe & Szegedy, 2015).

    [B, C, H, W] -> [B, C, H, W].
    """

    # a fresh tensor its backward does not save: a later in-place op may overwrite it
    # (engine/compiler/liveness.py)
    overwritable_output = True

    def __init__(self, in_size: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__(in_size, eps, momentum, affine, track_running_stats)

    def label(self) -> str:
        return "batch norm"


@register("batchnorm1d", category="norm", same_shape=True, in_dim=1,
          example={"args": {}, "inputs": [[3, 4]]})
class BatchNorm1d(nn.BatchNorm1d):
    """Batch normalisation of features (Ioffe & Szegedy, 2015).

    [B, D] -> [B, D], or [B, C, T] -> [B, C, T].
    """

    def __init__(self, in_size: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__(in_size, eps, momentum, affine, track_running_stats)

    def label(self) -> str:
        return "batch norm"


@register("layernorm", category="norm", same_shape=True, in_dim=-1,
          example={"args": {"eps": 1e-6}, "inputs": [[2, 3, 8]]})
class LayerNorm(nn.LayerNorm):
    """Layer normalisation over the last dimension (Ba et al., 2016).

    [B, ..., D] -> [B, ..., D].
    """

    def __init__(self, in_size: int, eps: float = 1e-5, affine: bool = True, bias: bool = True):
        super().__init__(in_size, eps, elementwise_affine=affine, bias=bias)

    def label(self) -> str:
        return "layer norm"


@register("layernorm2d", category="norm", same_shape=True, in_dim=1,
          example={"args": {"eps": 1e-6}, "inputs": [[2, 4, 3, 3]]})
class LayerNorm2d(nn.LayerNorm):
    """Channels-first layer normalisation, as in ConvNeXt (Liu et al., 2022).

    [B, C, H, W] -> [B, C, H, W]; each pixel's C values are normalised (biased variance).
    """

    def __init__(self, in_size: int, eps: float = 1e-5, affine: bool = True):
        super().__init__(in_size, eps, elementwise_affine=affine)

    def label(self) -> str:
        return "layer norm (channels)"

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


@register("group_norm", category="norm", in_dim=1, same_shape=True,
          example={"args": {"groups": 4}, "inputs": [[2, 8, 3, 3]]})
class GroupNorm(nn.GroupNorm):
    """Group normalisation over channel groups (Wu & He, 2018); `groups` must divide C.

    [B, C, H, W] -> [B, C, H, W] (also [B, C, *] -> [B, C, *]).
    """

    def __init__(self, in_size: int, groups: int = 32, eps: float = 1e-5, affine: bool = True):
        super().__init__(groups, in_size, eps, affine)

    def label(self) -> str:
        return f"group norm, {self.num_groups} groups"


@register("instance_norm", category="norm", in_dim=1, same_shape=True,
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


@register("lrn", category="norm", same_shape=True,
          example={"args": {"size": 3}, "inputs": [[2, 6, 4, 4]]})
class LocalResponseNorm(nn.LocalResponseNorm):
    """Local response normalisation across channels (Krizhevsky et al., "ImageNet
    Classification with Deep Convolutional Neural Networks", 2012), as torch's
    LocalResponseNorm: each value divided by (k + alpha / size * the sum of squares over the
    `size` channels centred on it) ** beta. torch (and Caffe) divide `alpha` by `size`; the
    paper's formula does not, so its alpha 1e-4 is alpha 5e-4 here with size 5. No parameters.

    [B, C, H, W] -> [B, C, H, W] (also [B, C, *] -> [B, C, *]).
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__(size, alpha, beta, k)

    def label(self) -> str:
        return f"local response norm, size {self.size}"


def _float(x: Tensor) -> Tensor:
    # Blocks that also take class labels may receive every input as integers (a registry
    # example declares one dtype for all its inputs): compute in floating point.
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


@register("conditional_batchnorm", category="norm", in_dim=1, inputs=2, same_shape=True,
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


@register("pixel_norm", category="norm", same_shape=True, example={"args": {}, "inputs": [[2, 4, 3, 3]]})
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


@register("normalize", category="norm", same_shape=True,
          example={"args": {"dim": -1}, "inputs": [[2, 3, 4]]})
class Normalize(nn.Module):
    """Scale each vector along `dim` to unit `p`-norm, as `F.normalize(x, p, dim, eps)`:
    x / max(||x||_p, eps). No parameters; Swin V2's cosine attention normalises its queries
    and keys so.

    [B, *] -> [B, *].
    """

    def __init__(self, dim: int = -1, p: float = 2.0, eps: float = 1e-12):
        super().__init__()
        self.dim, self.p, self.eps = dim, float(p), eps

    def label(self) -> str:
        return f"L{self.p:g} normalize"

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, self.p, self.dim, self.eps)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, p={self.p:g}, eps={self.eps:g}"
