"""Regularisers that act only in training mode."""

from __future__ import annotations

from torch import Tensor, nn

from engine.blocks.registry import register


@register("dropout", category="regularize",
          same_shape=True, example={"args": {"p": 0.5}, "inputs": [[2, 3, 4]]})
class Dropout(nn.Dropout):
    """Dropout (Srivastava et al., 2014): zero elements with probability p. [B, *] -> [B, *]."""

    # returns its input itself (eval, p = 0) or a fresh tensor its backward does not save (it
    # keeps the mask): overwritable wherever its input is (engine/compiler/liveness.py)
    overwritable_through = True

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__(p, inplace)

    def label(self) -> str:
        return f"dropout {self.p:g}"


@register("stochastic_depth", category="regularize",
          same_shape=True, example={"args": {"p": 0.1}, "inputs": [[2, 3, 4, 4]]})
class StochasticDepth(nn.Module):
    """Stochastic depth / drop path (Huang et al., 2016): drop whole residual branches.

    [B, *] -> [B, *]; `mode: row` drops per sample, `batch` drops the whole batch.
    """

    # its input itself (eval, p = 0) or `input * noise`, a fresh tensor whose backward keeps only
    # the noise: overwritable wherever its input is (engine/compiler/liveness.py)
    overwritable_through = True

    def __init__(self, p: float = 0.0, mode: str = "row"):
        super().__init__()
        self.p, self.mode = p, mode

    def label(self) -> str:
        return f"drop path {self.p:.2g}"

    def forward(self, x: Tensor) -> Tensor:
        # imported here: torchvision.ops pulls in torch._dynamo (seconds of start-up) for every
        # spec, and only a forward through this block needs it
        from torchvision.ops import stochastic_depth
        return stochastic_depth(x, self.p, self.mode, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"
