"""Tensor plumbing without weights: flatten, reshape, permute, token selection, chunks,
padding masks, scalar arithmetic (scale, mul_scalar, add_scalar), rolls (Swin's shifted windows)
and channel shuffles (ShuffleNet)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.blocks.registry import register


@register("flatten", category="tensor_ops", layout=False,
          example={"args": {}, "inputs": [[2, 3, 4, 4]]})
class Flatten(nn.Flatten):
    """Flatten dims start..end into one. [B, C, H, W] -> [B, C*H*W] with the defaults."""

    def __init__(self, start: int = 1, end: int = -1):
        super().__init__(start, end)


@register("reshape", category="tensor_ops", layout=False,
          example={"args": {"shape": [-1, 4]}, "inputs": [[2, 3, 8]]})
class Reshape(nn.Module):
    """Reshape every sample, keeping the batch dim. [B, *] -> [B, *shape] (one -1 allowed)."""

    def __init__(self, shape: list[int]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


@register("permute", category="tensor_ops", layout=False,
          example={"args": {"dims": [0, 2, 3, 1]}, "inputs": [[2, 3, 4, 5]]})
class Permute(nn.Module):
    """Reorder dimensions. [B, C, H, W] -> [B, H, W, C] with `dims: [0, 2, 3, 1]`."""

    def __init__(self, dims: list[int]):
        super().__init__()
        self.dims = tuple(dims)

    def label(self) -> str:
        return f"permute {self.dims}"

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


@register("select", category="tensor_ops", layout=False,
          example={"args": {"index": 0}, "inputs": [[2, 5, 8]]})
class Select(nn.Module):
    """Pick one position along `dim`, e.g. ViT's class token. [B, T, D] -> [B, D]."""

    def __init__(self, index: int = 0, dim: int = 1):
        super().__init__()
        self.index, self.dim = index, dim

    def label(self) -> str:
        return f"token {self.index}"

    def forward(self, x: Tensor) -> Tensor:
        return x.select(self.dim, self.index)

    def extra_repr(self) -> str:
        return f"index={self.index}, dim={self.dim}"


@register("chunk", category="tensor_ops", outputs=("0", "1"),
          example={"args": {"chunks": 2, "dim": 1}, "inputs": [[2, 6, 3]]})
class Chunk(nn.Module):
    """Split into `chunks` equal parts along `dim`; pick one with `node.0`, `node.1`, ...

    [B, C, *] -> `chunks` x [B, C / chunks, *] (a VAE encoder's mean and log-variance).
    """

    def __init__(self, chunks: int = 2, dim: int = 1):
        super().__init__()
        self.chunks, self.dim = chunks, dim

    def label(self) -> str:
        return f"split x{self.chunks}"

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(x.chunk(self.chunks, self.dim))

    def extra_repr(self) -> str:
        return f"chunks={self.chunks}, dim={self.dim}"


@register("padding_mask", category="tensor_ops", layout=False,
          example={"args": {"pad": 0}, "inputs": [[2, 5]], "dtype": "long"})
class PaddingMask(nn.Module):
    """Where a batch of token ids is padding.

    [B, T] (long ids) -> [B, T] (bool): True where the id equals `pad`, the convention of
    every mask input here and of `nn.MultiheadAttention`'s `key_padding_mask`.
    """

    def __init__(self, pad: int = 0):
        super().__init__()
        self.pad = pad

    def label(self) -> str:
        return f"padding mask (id {self.pad})"

    def forward(self, tokens: Tensor) -> Tensor:
        return tokens == self.pad

    def extra_repr(self) -> str:
        return f"pad={self.pad}"


@register("scale", category="tensor_ops",
          same_shape=True, example={"args": {"factor": 0.1}, "inputs": [[2, 4, 3, 3]]})
class Scale(nn.Module):
    """A constant factor: x -> factor * x, e.g. EDSR's residual scaling 0.1 (Lim et al., 2017),
    which keeps the residual branches of a wide network from blowing up early in training.
    `mul_scalar` is the same op with the argument named `value`.

    [B, *] -> [B, *]. No parameters.
    """

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def label(self) -> str:
        return f"x {self.factor:g}"

    def forward(self, x: Tensor) -> Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"


@register("mul_scalar", category="tensor_ops",
          same_shape=True, example={"args": {"value": 0.5}, "inputs": [[2, 4, 3, 3]]})
class MulScalar(Scale):
    """x -> x * value: `scale` (same module, same maths) under the argument name `value`, the
    twin of `add_scalar`. [B, *] -> [B, *]. No parameters."""

    def __init__(self, value: float):
        super().__init__(value)


@register("add_scalar", category="tensor_ops",
          same_shape=True, example={"args": {"value": 0.5}, "inputs": [[2, 4, 3, 3]]})
class AddScalar(nn.Module):
    """A constant offset: x -> x + value. [B, *] -> [B, *]. No parameters."""

    def __init__(self, value: float):
        super().__init__()
        self.value = float(value)

    def label(self) -> str:
        return f"+ {self.value:g}"

    def forward(self, x: Tensor) -> Tensor:
        return x + self.value

    def extra_repr(self) -> str:
        return f"value={self.value:g}"


@register("roll", category="tensor_ops",
          example={"args": {"shifts": [-1, -1], "dims": [1, 2]}, "inputs": [[2, 4, 4, 3]]})
class Roll(nn.Module):
    """Shift elements cyclically along `dims` by `shifts` (one shift per dim), as
    `torch.roll(x, shifts, dims)`: Swin's shifted windows (Liu et al., 2021) roll a
    [B, H, W, C] map by (-s, -s) on dims (1, 2) before windowed attention and back after.

    [B, *] -> [B, *]. No parameters.
    """

    def __init__(self, shifts: int | list[int], dims: int | list[int]):
        super().__init__()
        self.shifts = tuple(shifts) if isinstance(shifts, (list, tuple)) else (shifts,)
        self.dims = tuple(dims) if isinstance(dims, (list, tuple)) else (dims,)
        if len(self.shifts) != len(self.dims) or not self.dims:
            raise ValueError(f"roll: give one shift per dim, got shifts {list(self.shifts)} "
                             f"for dims {list(self.dims)}")

    def label(self) -> str:
        return f"roll {list(self.shifts)} on dims {list(self.dims)}"

    def forward(self, x: Tensor) -> Tensor:
        return torch.roll(x, self.shifts, self.dims)

    def extra_repr(self) -> str:
        return f"shifts={self.shifts}, dims={self.dims}"


@register("channel_shuffle", category="tensor_ops",
          example={"args": {"groups": 2}, "inputs": [[2, 6, 3, 3]]})
class ChannelShuffle(nn.Module):
    """Interleave the channels of `groups` groups (ShuffleNet, Zhang et al., 2018): view
    [B, groups, C / groups, *], swap those two dims, flatten back, as torchvision's
    shufflenetv2 `channel_shuffle` and `nn.ChannelShuffle`; output channel
    i * groups + g is input channel g * (C / groups) + i.

    [B, C, *] -> [B, C, *] with C divisible by `groups`. No parameters.
    """

    def __init__(self, groups: int):
        super().__init__()
        if groups < 1:
            raise ValueError(f"channel_shuffle: groups must be a positive integer, got {groups}")
        self.groups = groups

    def label(self) -> str:
        return f"channel shuffle, {self.groups} groups"

    def forward(self, x: Tensor) -> Tensor:
        b, c, *rest = x.shape
        if c % self.groups:
            raise ValueError(f"channel_shuffle: {c} channels are not divisible by "
                             f"groups = {self.groups}")
        x = x.view(b, self.groups, c // self.groups, *rest).transpose(1, 2)
        return x.reshape(b, c, *rest)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
