"""Shape rules: a block's output shapes and MACs computed from its arguments, without PyTorch.

The shape stage (engine/compiler/shapes.py) runs every other block on meta tensors; running
PyTorch's meta kernels was most of `engine summary`'s time. A block class may define

    @staticmethod
    def shape_rule(args: dict, shapes: list[tuple[int, ...]]) -> Rule | None

with `args` its evaluated YAML arguments and `in_size` (when the block takes it), and `shapes`
its inputs' shapes. It returns (output shapes, MACs), or None for anything it does not cover
with certainty, including every invalid case: the shape stage then runs the block on meta, and
PyTorch's own error is reported. Only float32 inputs reach a rule (dtype promotion and the
weights' dtype stay PyTorch's to decide). `tests/compiler/test_shape_rules.py` checks every
rule against the meta run, shapes and MACs, on every node of every bundled spec.

MACs are PyTorch's FLOP counter's / 2: the products of conv and linear layers, 0 for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

Shape = tuple[int, ...]
Rule = tuple[list[Shape], int]


def pair(value) -> tuple[int, int] | None:
    """`3` or `[3, 3]` -> (3, 3); anything else (a string, three sizes) -> None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value[0], value[1]
    return None


def numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def conv_size(size: int, k: int, stride: int, pad: int, dilation: int) -> int:
    """nn.Conv2d's output size along one dim (may be <= 0: an error the rule declines)."""
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def pool_size(size: int, k: int, stride: int, pad: int, dilation: int, ceil: bool) -> int:
    """PyTorch's `pooling_output_shape`: with `ceil`, the last window must start inside the
    input or its left padding."""
    span = size + 2 * pad - dilation * (k - 1) - 1 + (stride - 1 if ceil else 0)
    out = span // stride + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def broadcast(shapes: Sequence[Shape]) -> Shape | None:
    """NumPy broadcasting of the shapes, or None where two sizes clash."""
    rank = max(len(s) for s in shapes)
    out = [1] * rank
    for shape in shapes:
        for i, size in enumerate(shape, rank - len(shape)):
            if size != out[i]:
                if out[i] != 1 and size != 1:
                    return None
                out[i] = size if out[i] == 1 else out[i]
    return tuple(out)


def dim_index(dim: int, rank: int) -> int | None:
    """A possibly negative dim as an index into a shape of `rank`, or None if out of range."""
    if isinstance(dim, bool) or not isinstance(dim, int) or not -rank <= dim < rank:
        return None
    return dim % rank
