"""Element-wise activations. All keep the shape: [B, *] -> [B, *]."""

from __future__ import annotations

from torch import nn

from engine.blocks.registry import register

_EXAMPLE = {"args": {}, "inputs": [[2, 3, 4]]}


@register("relu", category="activation", same_shape=True, example=_EXAMPLE)
class ReLU(nn.ReLU):
    """Rectified linear unit (Nair & Hinton, 2010). [B, *] -> [B, *]."""

    def __init__(self, inplace: bool = False):
        super().__init__(inplace)

    def label(self) -> str:
        return "ReLU"


@register("leaky_relu", category="activation", same_shape=True, example=_EXAMPLE)
class LeakyReLU(nn.LeakyReLU):
    """Leaky ReLU (Maas et al., 2013) with negative `slope`. [B, *] -> [B, *]."""

    def __init__(self, slope: float = 0.01, inplace: bool = False):
        super().__init__(slope, inplace)

    def label(self) -> str:
        return f"leaky ReLU {self.negative_slope:g}"


@register("elu", category="activation", same_shape=True, example=_EXAMPLE)
class ELU(nn.ELU):
    """Exponential linear unit (Clevert et al., 2016): x if x > 0 else alpha * (exp(x) - 1).

    [B, *] -> [B, *].
    """

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha)

    def label(self) -> str:
        return "ELU" if self.alpha == 1.0 else f"ELU {self.alpha:g}"


@register("gelu", category="activation", same_shape=True, example=_EXAMPLE)
class GELU(nn.GELU):
    """Gaussian error linear unit (Hendrycks & Gimpel, 2016). [B, *] -> [B, *].

    `approximate: tanh` selects the tanh approximation.
    """

    def __init__(self, approximate: str = "none"):
        super().__init__(approximate)

    def label(self) -> str:
        return "GELU"


@register("silu", category="activation", same_shape=True, example=_EXAMPLE)
class SiLU(nn.SiLU):
    """Sigmoid-weighted linear unit, a.k.a. swish (Elfwing et al., 2017). [B, *] -> [B, *]."""

    def __init__(self, inplace: bool = False):
        super().__init__(inplace)

    def label(self) -> str:
        return "SiLU"


@register("sigmoid", category="activation", same_shape=True, example=_EXAMPLE)
class Sigmoid(nn.Sigmoid):
    """Logistic sigmoid. [B, *] -> [B, *]."""

    def __init__(self):
        super().__init__()


@register("tanh", category="activation", same_shape=True, example=_EXAMPLE)
class Tanh(nn.Tanh):
    """Hyperbolic tangent. [B, *] -> [B, *]."""

    def __init__(self):
        super().__init__()


@register("softmax", category="activation", same_shape=True, example=_EXAMPLE)
class Softmax(nn.Softmax):
    """Softmax along `dim`. [B, *] -> [B, *]."""

    def __init__(self, dim: int = -1):
        super().__init__(dim)


@register("identity", category="activation", same_shape=True, example=_EXAMPLE)
class Identity(nn.Identity):
    """Passes its input through unchanged. [B, *] -> [B, *]."""

    def __init__(self):
        super().__init__()


@register("prelu", category="activation",
          same_shape=True, example={"args": {"channels": 3}, "inputs": [[2, 3, 4]]})
class PReLU(nn.PReLU):
    """Parametric ReLU (He et al., 2015): a learned negative slope, one shared (`channels: 1`)
    or one per channel of dim 1 (SRGAN's generator, Ledig et al., 2017). [B, *] -> [B, *]."""

    def __init__(self, channels: int = 1, init: float = 0.25):
        super().__init__(channels, init)

    def label(self) -> str:
        return "PReLU"
