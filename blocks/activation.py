"""Element-wise activations, the hard (piecewise linear) ones of MobileNet among them,
clamping and the exponential. All keep the shape: [B, *] -> [B, *]."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.blocks.registry import register

_EXAMPLE = {"args": {}, "inputs": [[2, 3, 4]]}


@register("relu", category="activation", same_shape=True, example=_EXAMPLE)
class ReLU(nn.ReLU):
    """Rectified linear unit (Nair & Hinton, 2010). [B, *] -> [B, *]."""

    def __init__(self, inplace: bool = False):
        super().__init__(inplace)

    def label(self) -> str:
        return "ReLU"


@register("relu6", category="activation", same_shape=True, example=_EXAMPLE)
class ReLU6(nn.ReLU6):
    """ReLU capped at 6, min(max(x, 0), 6) (Krizhevsky, 2010; MobileNetV1/V2, Howard et al.,
    2017, Sandler et al., 2018). [B, *] -> [B, *]. Equals `nn.ReLU6`."""

    def __init__(self, inplace: bool = False):
        super().__init__(inplace)

    def label(self) -> str:
        return "ReLU6"


@register("hardtanh", category="activation", same_shape=True, example=_EXAMPLE)
class Hardtanh(nn.Hardtanh):
    """Linear between `min` and `max`, clipped outside: min(max(x, min), max).

    [B, *] -> [B, *]. Equals `nn.Hardtanh(min, max)`; `max` must be greater than `min`.
    """

    def __init__(self, min: float = -1.0, max: float = 1.0):
        if not max > min:
            raise ValueError(f"hardtanh: max ({max}) must be greater than min ({min})")
        super().__init__(min, max)

    def label(self) -> str:
        return f"hardtanh [{self.min_val:g}, {self.max_val:g}]"


@register("clamp", category="activation", same_shape=True,
          example={"args": {"min": -0.5, "max": 0.5}, "inputs": [[2, 3, 4]]})
class Clamp(nn.Module):
    """Clip to `min` and/or `max` (give at least one; a missing bound is open), as
    `torch.clamp(x, min, max)`. [B, *] -> [B, *]. No parameters."""

    def __init__(self, min: float | None = None, max: float | None = None):
        super().__init__()
        if min is None and max is None:
            raise ValueError("clamp needs a bound: give min:, max: or both")
        self.min, self.max = min, max

    def label(self) -> str:
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f"clamp [{lo}, {hi}]"

    def forward(self, x: Tensor) -> Tensor:
        return torch.clamp(x, self.min, self.max)

    def extra_repr(self) -> str:
        return f"min={self.min}, max={self.max}"


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


@register("hardsigmoid", category="activation", same_shape=True, example=_EXAMPLE)
class Hardsigmoid(nn.Hardsigmoid):
    """Piecewise linear sigmoid, relu6(x + 3) / 6 (MobileNetV3, Howard et al., 2019).

    [B, *] -> [B, *]. Equals `nn.Hardsigmoid`.
    """

    def __init__(self, inplace: bool = False):
        super().__init__(inplace)

    def label(self) -> str:
        return "hard sigmoid"


@register("hardswish", category="activation", same_shape=True, example=_EXAMPLE)
class Hardswish(nn.Hardswish):
    """Piecewise swish, x * relu6(x + 3) / 6 (MobileNetV3, Howard et al., 2019).

    [B, *] -> [B, *]. Equals `nn.Hardswish`.
    """

    def __init__(self, inplace: bool = False):
        super().__init__(inplace)

    def label(self) -> str:
        return "hard swish"


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


@register("exp", category="activation", same_shape=True, example=_EXAMPLE)
class Exp(nn.Module):
    """The exponential, e^x (Swin V2 exponentiates its clamped learned logit scale).
    [B, *] -> [B, *]. No parameters."""

    def __init__(self):
        super().__init__()

    def label(self) -> str:
        return "exp"

    def forward(self, x: Tensor) -> Tensor:
        return torch.exp(x)


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
