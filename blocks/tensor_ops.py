"""Tensor plumbing without weights: flatten, reshape, permute, token selection, slices, pads,
lookups by an index tensor, chunks, padding and segment masks, scalar arithmetic (scale,
mul_scalar, add_scalar), rolls (Swin's shifted windows) and channel shuffles (ShuffleNet)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.blocks.registry import register
from engine.blocks.shape_rules import Rule, dim_index, numel


@register("flatten", category="tensor_ops", layout=False,
          example={"args": {}, "inputs": [[2, 3, 4, 4]]})
class Flatten(nn.Flatten):
    """Flatten dims start..end into one. [B, C, H, W] -> [B, C*H*W] with the defaults."""

    def __init__(self, start: int = 1, end: int = -1):
        super().__init__(start, end)

    @staticmethod
    def shape_rule(args: dict, shapes: list) -> Rule | None:
        shape = shapes[0]
        rank = max(len(shape), 1)  # a 0-d tensor flattens as a 1-d one
        start, end = dim_index(args.get("start", 1), rank), dim_index(args.get("end", -1), rank)
        if len(shapes) != 1 or not shape or start is None or end is None or start > end:
            return None
        return [(*shape[:start], numel(shape[start:end + 1]), *shape[end + 1:])], 0


@register("reshape", category="tensor_ops", layout=False,
          example={"args": {"shape": [-1, 4]}, "inputs": [[2, 3, 8]]})
class Reshape(nn.Module):
    """Reshape every sample, keeping the batch dim. [B, *] -> [B, *shape] (one -1 allowed).

    `batch: true`: `shape` is the whole shape, dim 0 included, so the batch may fold or unfold:
    Swin's windows [B, n, n, w, w, C] -> [B*n*n, w*w, C] with `shape: [-1, 49, 96]`, and back.
    """

    def __init__(self, shape: list[int], batch: bool = False):
        super().__init__()
        self.shape, self.batch = tuple(shape), batch

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(self.shape) if self.batch else x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, batch=True" if self.batch else f"shape={self.shape}"


@register("permute", category="tensor_ops", layout=False,
          example={"args": {"dims": [0, 2, 3, 1]}, "inputs": [[2, 3, 4, 5]]})
class Permute(nn.Module):
    """Reorder dimensions. [B, C, H, W] -> [B, H, W, C] with `dims: [0, 2, 3, 1]`."""

    def __init__(self, dims: list[int]):
        super().__init__()
        self.dims = tuple(dims)

    @staticmethod
    def shape_rule(args: dict, shapes: list) -> Rule | None:
        shape = shapes[0]
        dims = [dim_index(d, len(shape)) for d in args["dims"]]
        if len(shapes) != 1 or sorted(d for d in dims if d is not None) != list(range(len(shape))):
            return None
        return [tuple(shape[d] for d in dims)], 0

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


@register("slice", category="tensor_ops",
          example={"args": {"dim": 1, "end": 3}, "inputs": [[2, 5, 4]]})
class Slice(nn.Module):
    """Keep positions `start:end:step` of `dim`, as Python slicing (`end: null` runs to the end,
    negative values count from it): Swin crops its padded windows back with `x[:, :H]`.

    [B, N, *] -> [B, len(range(N)[start:end:step]), *] with `dim: 1`. A view, no copy.
    """

    def __init__(self, dim: int, start: int = 0, end: int | None = None, step: int = 1):
        super().__init__()
        if step < 1:
            raise ValueError(f"slice: step must be a positive integer, got {step}")
        self.dim, self.start, self.end, self.step = dim, start, end, step

    def label(self) -> str:
        end = "" if self.end is None else self.end
        step = "" if self.step == 1 else f":{self.step}"
        return f"slice [{self.start}:{end}{step}] of dim {self.dim}"

    def forward(self, x: Tensor) -> Tensor:
        dim = self.dim % x.dim() if x.dim() else self.dim
        return x[(slice(None),) * dim + (slice(self.start, self.end, self.step),)]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, start={self.start}, end={self.end}, step={self.step}"


@register("pad", category="tensor_ops",
          example={"args": {"pad": [0, 0, 0, 2, 0, 1]}, "inputs": [[2, 5, 5, 3]]})
class Pad(nn.Module):
    """Pad the last dims, as `F.pad(x, pad, mode, value)`: `pad` is (before, after) pairs
    starting from the LAST dim; Swin pads a [B, H, W, C] map at the bottom and right to whole
    windows with `pad: [0, 0, 0, right, 0, bottom]`. `mode`: constant (with `value`), reflect,
    replicate or circular.

    [B, *] -> [B, *] with each padded dim grown by its pair's sum. No parameters.
    """

    def __init__(self, pad: list[int], value: float = 0.0, mode: str = "constant"):
        super().__init__()
        if len(pad) % 2:
            raise ValueError(f"pad: give (before, after) pairs, got {len(pad)} sizes {list(pad)}")
        if mode not in ("constant", "reflect", "replicate", "circular"):
            raise ValueError(f"pad: mode must be constant, reflect, replicate or circular, got {mode!r}")
        self.pad, self.value, self.mode = tuple(pad), float(value), mode

    def label(self) -> str:
        return f"pad {list(self.pad)}"

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "constant":
            return F.pad(x, self.pad, value=self.value)
        return F.pad(x, self.pad, mode=self.mode)

    def extra_repr(self) -> str:
        return f"pad={self.pad}, value={self.value:g}, mode={self.mode!r}"


@register("index", category="tensor_ops", inputs=2, layout=False,
          example={"args": {}, "inputs": [[5, 3], [4, 2]], "dtypes": ["float32", "long"]})
class Index(nn.Module):
    """Look rows of a table up by an integer tensor: `table[index]`, or along `dim` the rows
    of that dim (`table[:, index]` with `dim: 1`), as PyTorch's indexing by a tensor. Swin
    gathers its relative position bias: `relative_position_bias_table[relative_position_index]`.

    [N, *] (table), [*I] (long index, each < N) -> [*I, *] with `dim: 0`;
    [A, N, *], [*I] -> [A, *I, *] with `dim: 1`. No parameters.
    """

    def __init__(self, dim: int = 0):
        super().__init__()
        self.dim = dim

    def label(self) -> str:
        return "table[index]" if self.dim == 0 else f"index along dim {self.dim}"

    def forward(self, table: Tensor, index: Tensor) -> Tensor:
        dim = self.dim % table.dim()
        return table[(slice(None),) * dim + (index,)]

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


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


@register("segment_mask", category="tensor_ops", layout=False,
          example={"args": {"value": -100.0}, "inputs": [[2, 5]]})
class SegmentMask(nn.Module):
    """An additive attention mask from segment labels: each position attends only to the
    positions with its own label (packed sequences; Swin's shifted windows, whose tokens from
    different regions of the rolled map must not attend to each other).

    [*, T] (labels) -> [*, T, T]: 0 where labels i and j are equal, `value` elsewhere
    (default -inf: zero attention weight; Swin adds -100). Floating labels give a mask of their
    dtype, integer ones one of the default float dtype. Add it to the scores before the softmax.
    """

    def __init__(self, value: float = float("-inf")):
        super().__init__()
        self.value = float(value)

    def label(self) -> str:
        return f"segment mask ({self.value:g})"

    def forward(self, labels: Tensor) -> Tensor:
        dtype = labels.dtype if labels.is_floating_point() else torch.get_default_dtype()
        differ = labels.unsqueeze(-1) != labels.unsqueeze(-2)
        return torch.zeros(differ.shape, dtype=dtype, device=labels.device).masked_fill(differ, self.value)

    def extra_repr(self) -> str:
        return f"value={self.value:g}"


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
