"""Primitive blocks as torch layers: constructor arguments read back from the built module and
checked against it, a block's own class copied where no torch layer fits, and parameter-free
blocks written as expressions in the forward."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from engine.blocks.registry import block_args, inferred_args, lookup
from engine.compiler.ir import Node, Shaped
from engine.views.codegen.ir import Arg, Call, Cat, Kw, Lit, Literals, Pos, Text, Token
from engine.views.codegen.literals import Raw, is_attr, literal
from engine.views.codegen.sources import Helpers, copy_block

_CAT_BROADCAST = '''\
def cat_broadcast_batch(tensors: list[Tensor], dim: int) -> Tensor:
    """torch.cat, first expanding batch-1 tensors (a learned class token) to the others' batch."""
    batch = max(t.shape[0] for t in tensors)
    return torch.cat([t.expand(batch, *t.shape[1:]) for t in tensors], dim)
'''


# ---- torch layers: constructor arguments read back from the built module --------------------

def _short(value):
    """(3, 3) -> 3: the form people write for square kernels and strides."""
    if isinstance(value, tuple) and value and all(v == value[0] for v in value):
        return value[0]
    return value


def _conv2d(m: nn.Conv2d):
    if m.transposed or any(m.output_padding):
        return None
    return [Arg("in_channels", m.in_channels, positional=True),
            Arg("out_channels", m.out_channels, positional=True),
            Arg("kernel_size", _short(m.kernel_size)), Arg("stride", _short(m.stride), 1),
            Arg("padding", m.padding if isinstance(m.padding, str) else _short(m.padding), 0),
            Arg("dilation", _short(m.dilation), 1), Arg("groups", m.groups, 1),
            Arg("bias", m.bias is not None, True), Arg("padding_mode", m.padding_mode, "zeros")]


def _linear(m: nn.Linear):
    return [Arg("in_features", m.in_features, positional=True),
            Arg("out_features", m.out_features, positional=True),
            Arg("bias", m.bias is not None, True)]


def _embedding(m: nn.Embedding):
    return [Arg("num_embeddings", m.num_embeddings, positional=True),
            Arg("embedding_dim", m.embedding_dim, positional=True),
            Arg("padding_idx", m.padding_idx, None), Arg("max_norm", m.max_norm, None),
            Arg("norm_type", m.norm_type, 2.0), Arg("scale_grad_by_freq", m.scale_grad_by_freq, False),
            Arg("sparse", m.sparse, False)]


def _batchnorm(m: nn.modules.batchnorm._BatchNorm):
    return [Arg("num_features", m.num_features, positional=True), Arg("eps", m.eps, 1e-5),
            Arg("momentum", m.momentum, 0.1), Arg("affine", m.affine, True),
            Arg("track_running_stats", m.track_running_stats, True)]


def _layernorm(m: nn.LayerNorm):
    shape = m.normalized_shape
    bias = m.bias is not None if m.elementwise_affine else True
    return [Arg("normalized_shape", shape[0] if len(shape) == 1 else shape, positional=True),
            Arg("eps", m.eps, 1e-5), Arg("elementwise_affine", m.elementwise_affine, True),
            Arg("bias", bias, True)]


def _attention(m: nn.MultiheadAttention):
    args = [Arg("embed_dim", m.embed_dim, positional=True),
            Arg("num_heads", m.num_heads, positional=True), Arg("dropout", m.dropout, 0.0),
            Arg("bias", m.in_proj_bias is not None, True),
            Arg("add_bias_kv", m.bias_k is not None, False),
            Arg("add_zero_attn", m.add_zero_attn, False)]
    if m.kdim != m.embed_dim or m.vdim != m.embed_dim:
        args += [Arg("kdim", m.kdim), Arg("vdim", m.vdim)]
    return [*args, Arg("batch_first", m.batch_first, False)]


def _maxpool(m: nn.MaxPool2d):
    return [Arg("kernel_size", m.kernel_size), Arg("stride", m.stride), Arg("padding", m.padding, 0),
            Arg("dilation", m.dilation, 1), Arg("return_indices", m.return_indices, False),
            Arg("ceil_mode", m.ceil_mode, False)]


def _avgpool(m: nn.AvgPool2d):
    return [Arg("kernel_size", m.kernel_size), Arg("stride", m.stride), Arg("padding", m.padding, 0),
            Arg("ceil_mode", m.ceil_mode, False),
            Arg("count_include_pad", m.count_include_pad, True),
            Arg("divisor_override", m.divisor_override, None)]


def _inplace(m):
    return [Arg("inplace", m.inplace, False)]


# Torch layers written as themselves: class -> its constructor arguments, read back from a module
# (None where the module cannot be written so). The test of the copied fallback empties it.
LAYERS = {
    nn.Conv2d: _conv2d,
    nn.Linear: _linear,
    nn.Embedding: _embedding,
    nn.BatchNorm2d: _batchnorm,
    nn.BatchNorm1d: _batchnorm,
    nn.LayerNorm: _layernorm,
    nn.MultiheadAttention: _attention,
    nn.ReLU: _inplace,
    nn.SiLU: _inplace,
    nn.LeakyReLU: lambda m: [Arg("negative_slope", m.negative_slope, 0.01),
                             Arg("inplace", m.inplace, False)],
    nn.GELU: lambda m: [Arg("approximate", m.approximate, "none")],
    nn.Sigmoid: lambda m: [],
    nn.Tanh: lambda m: [],
    nn.Identity: lambda m: [],
    nn.Softmax: lambda m: [Arg("dim", m.dim)],
    nn.MaxPool2d: _maxpool,
    nn.AvgPool2d: _avgpool,
    nn.AdaptiveAvgPool2d: lambda m: [Arg("output_size", m.output_size, positional=True)],
    nn.AdaptiveMaxPool2d: lambda m: [Arg("output_size", m.output_size, positional=True),
                                     Arg("return_indices", m.return_indices, False)],
    nn.Dropout: lambda m: [Arg("p", m.p), Arg("inplace", m.inplace, False)],
    nn.Flatten: lambda m: [Arg("start_dim", m.start_dim, 1), Arg("end_dim", m.end_dim, -1)],
}

class Equivalent(NamedTuple):
    """A torchvision layer that does exactly what a block does."""

    import_line: str
    layer: type
    args: Callable[[nn.Module], list[Arg]]  # its constructor arguments, read from the block


# Blocks that are not torch subclasses but do exactly what a torchvision layer does, by op.
EQUIVALENTS = {
    "stochastic_depth": Equivalent("from torchvision.ops import StochasticDepth", StochasticDepth,
                                   lambda m: [Arg("p", m.p, positional=True),
                                              Arg("mode", m.mode, positional=True)]),
}

# Methods a block may add to its torch base without changing what the layer computes.
_HARMLESS = {"__init__", "reset_parameters", "_reset_parameters", "extra_repr", "__doc__",
             "__module__", "__qualname__", "__firstlineno__", "__static_attributes__",
             "__annotations__", "__dict__", "__weakref__", "__orig_bases__", "__parameters__",
             "__annotate_func__", "__annotations_cache__"}


def _members(cls: type, base: type) -> set[str]:
    """What a block overrides of its torch base. Methods the base does not have (a `label`
    for diagrams) cannot change what the base's forward computes, so they do not count."""
    names: set[str] = set()
    for c in cls.__mro__:
        if c is base:
            break
        names |= {n for n in vars(c) if hasattr(base, n)}
    return names - _HARMLESS


def _fingerprint(m: nn.Module) -> tuple:
    """What makes two modules compute the same: attributes, parameter and buffer shapes."""
    attrs = sorted((k, repr(v)) for k, v in vars(m).items()
                   if not k.startswith("_") and k != "training")
    tensors = sorted((n, tuple(t.shape), str(t.dtype))
                     for n, t in [*m.named_parameters(), *m.named_buffers()])
    return tuple(attrs), tuple(tensors)


def _attention_inline(node: Node, module: nn.Module) -> bool:
    """The attention block in a class: `nn.MultiheadAttention`, called (q, k, v)[0] inline."""
    return (node.op == "attention" and type(module).__module__ == "engine.blocks.attention"
            and isinstance(module, nn.MultiheadAttention))


# ---- a primitive block's module ---------------------------------------------------------------

class LayerCall(NamedTuple):
    """The constructor call of a primitive block's module."""

    call: Call
    attention: bool = False  # an nn.MultiheadAttention to call (q, k, v)[0], as torchvision


@dataclass
class Layers:
    """Writes the primitive blocks of one file; the block classes it copies go to `helpers`."""

    shaped: Shaped
    helpers: Helpers
    checked: dict[tuple, bool] = field(default_factory=dict)  # `fits`, memoised

    def constructor(self, node: Node, module: nn.Module, lits: Literals, owner: str,
                    in_class: bool) -> LayerCall:
        """The torch layer the module is, else its torchvision equivalent, else its own class
        copied; `in_class`: an attribute of a class (not an item of an nn.Sequential)."""
        return (self._equivalent(node, module, lits, owner)
                or self._torch_layer(node, module, lits, owner, in_class)
                or self._copied(node, module, lits, owner))

    def inline(self, node: Node, module: nn.Module, refs: list[str]) -> str | None:
        """A parameter-free block written as an expression in the forward, or None."""
        return inline_expression(node, module, refs, self.helpers)

    def fits(self, module: nn.Module, cls: type, args: list[Arg]) -> bool:
        """Whether `cls(*args)` builds the very module the engine built (compared on meta)."""
        mine = _fingerprint(module)
        key = (type(module), cls, repr(args), mine)
        if key not in self.checked:
            try:
                with torch.device("meta"):
                    ref = cls(*[a.value for a in args if a.positional],
                              **{a.name: a.value for a in args if not a.positional})
                self.checked[key] = _fingerprint(ref) == mine
            except Exception:  # the layer refuses these arguments: copy the block instead
                self.checked[key] = False
        return self.checked[key]

    def _equivalent(self, node: Node, module: nn.Module, lits: Literals,
                    owner: str) -> LayerCall | None:
        if node.op not in EQUIVALENTS:
            return None
        equivalent = EQUIVALENTS[node.op]
        args = equivalent.args(module)
        if not self.fits(module, equivalent.layer, args):
            return None
        self.helpers.imports.add(equivalent.import_line)
        return LayerCall(lits.call(equivalent.layer.__name__, args, owner))

    def _torch_layer(self, node: Node, module: nn.Module, lits: Literals, owner: str,
                     in_class: bool) -> LayerCall | None:
        cls = type(module)
        base = next((c for c in cls.__mro__ if c in LAYERS), None)
        args = LAYERS[base](module) if base is not None else None
        if args is None or not self.fits(module, base, args):
            return None
        extra = _members(cls, base)
        if in_class and _attention_inline(node, module):
            return LayerCall(lits.call(f"nn.{base.__name__}", args, owner), attention=True)
        if not extra:
            return LayerCall(lits.call(f"nn.{base.__name__}", args, owner))
        if extra == {"forward"}:  # the torch layer with a forward of its own
            copy_block(self.helpers, cls, node, base)
            return LayerCall(lits.call(cls.__name__, args, owner))
        return None

    def _copied(self, node: Node, module: nn.Module, lits: Literals, owner: str) -> LayerCall:
        """The block's own class, copied, called with its arguments as the engine built it."""
        cls = type(module)
        copy_block(self.helpers, cls, node)
        result = self.shaped.nodes[node.path]
        info = lookup(node.op)
        values = dict(result.args)
        if info is not None:
            values.update(inferred_args(info, [i.shape for i in result.inputs]))
        args = [Arg(a.name, values.get(a.name, a.default), a.default)
                for a in block_args(cls).values()]
        return LayerCall(lits.call(cls.__name__, args, owner))


def parameter_line(node: Node, tensor: torch.Tensor, lits: Literals) -> Token:
    """A learned tensor: `self.token = nn.Parameter(torch.zeros(1, 1, 768))` (its init rule,
    if any, is written with the others)."""
    stem = f"{node.name}_size".replace("-", "_")
    stem = stem if is_attr(stem) else "size"
    args = [Pos(Lit(lits.hole(d, f"{stem}{k}" if tensor.dim() > 1 else stem, node.name)))
            for k, d in enumerate(tensor.shape)]
    if tensor.dtype != torch.get_default_dtype():
        dtype = Raw(f"torch.{str(tensor.dtype).removeprefix('torch.')}")
        args.append(Kw("dtype", lits.hole(dtype, "dtype", node.name)))
    tok = Call(Text("nn.Parameter"), (Pos(Call(Text("torch.zeros"), tuple(args))),))
    if is_attr(node.name):
        return Cat((Text(f"self.{node.name} = "), tok))
    return Cat((Text(f"self.register_parameter({literal(node.name)}, "), tok, Text(")")))


def buffer_line(node: Node, module: nn.Module, lits: Literals) -> Token:
    """A buffer: `self.register_buffer("index", torch.tensor([...], dtype=torch.int64))`, its
    value written out (`persistent=False` where the spec says so)."""
    stem = f"{node.name}_value".replace("-", "_")
    args = [Pos(Lit(lits.hole(module.value, stem if is_attr(stem) else "value", node.name)))]
    if module.weight.dtype != torch.get_default_dtype():
        args.append(Pos(Text(f"dtype=torch.{str(module.weight.dtype).removeprefix('torch.')}")))
    tail = ")" if module.persistent else ", persistent=False)"
    return Cat((Text(f"self.register_buffer({literal(node.name)}, "),
                Call(Text("torch.tensor"), tuple(args)), Text(tail)))


# ---- parameter-free blocks inline in the forward ----------------------------------------------

def inline_expression(node: Node, module: nn.Module, refs: list[str],
                      helpers: Helpers) -> str | None:
    """A parameter-free block written as an expression in the forward, or None. Only blocks of
    blocks/ qualify, and only with exactly the attributes the expression reads."""
    if not type(module).__module__.startswith("engine.blocks.") or node.op not in _INLINE:
        return None
    attrs = {k for k in vars(module) if not k.startswith("_") and k != "training"}
    return _INLINE[node.op](module, attrs, refs, helpers)


def _add(m: nn.Module, attrs: set[str], refs: list[str], helpers: Helpers) -> str | None:
    return " + ".join(refs) if not attrs and refs else None


def _mul(m: nn.Module, attrs: set[str], refs: list[str], helpers: Helpers) -> str | None:
    return f"{refs[0]} * {refs[1]}" if not attrs and len(refs) == 2 else None


def _concat(m: nn.Module, attrs: set[str], refs: list[str], helpers: Helpers) -> str | None:
    if attrs != {"dim", "broadcast_batch"}:
        return None
    if m.broadcast_batch:
        helpers.sources.setdefault("cat_broadcast_batch", _CAT_BROADCAST)
        return f"cat_broadcast_batch([{', '.join(refs)}], {m.dim})"
    return f"torch.cat([{', '.join(refs)}], {m.dim})"


def _flatten(m: nn.Module, attrs: set[str], refs: list[str], helpers: Helpers) -> str | None:
    if not isinstance(m, nn.Flatten) or type(m).forward is not nn.Flatten.forward:
        return None
    end = "" if m.end_dim == -1 else f", {m.end_dim}"
    return f"torch.flatten({_first(refs)}, {m.start_dim}{end})"


def _reshape(m: nn.Module, attrs: set[str], refs: list[str], helpers: Helpers) -> str | None:
    if attrs != {"shape", "batch"}:
        return None
    x = _first(refs)
    if m.batch:
        return f"{x}.reshape({', '.join(map(str, m.shape))})"
    return f"{x}.reshape({x}.shape[0], {', '.join(map(str, m.shape))})"


def _permute(m: nn.Module, attrs: set[str], refs: list[str], helpers: Helpers) -> str | None:
    return f"{_first(refs)}.permute({', '.join(map(str, m.dims))})" if attrs == {"dims"} else None


def _select(m: nn.Module, attrs: set[str], refs: list[str], helpers: Helpers) -> str | None:
    if attrs != {"index", "dim"}:
        return None
    if m.dim == 1:
        return f"{_first(refs)}[:, {m.index}]"
    return f"{_first(refs)}.select({m.dim}, {m.index})"


def _chunk(m: nn.Module, attrs: set[str], refs: list[str], helpers: Helpers) -> str | None:
    return f"{_first(refs)}.chunk({m.chunks}, {m.dim})" if attrs == {"chunks", "dim"} else None


def _matmul(m: nn.Module, attrs: set[str], refs: list[str], helpers: Helpers) -> str | None:
    if attrs != {"transpose_b"} or len(refs) != 2:
        return None
    return f"{refs[0]}.matmul({refs[1]}.transpose(-2, -1))" if m.transpose_b else \
        f"{refs[0]}.matmul({refs[1]})"


def _index(m: nn.Module, attrs: set[str], refs: list[str], helpers: Helpers) -> str | None:
    if attrs != {"dim"} or len(refs) != 2 or m.dim < 0:
        return None
    return f"{refs[0]}[{':, ' * m.dim}{refs[1]}]"


def _roll(m: nn.Module, attrs: set[str], refs: list[str], helpers: Helpers) -> str | None:
    if attrs != {"shifts", "dims"}:
        return None
    return f"torch.roll({_first(refs)}, {m.shifts}, {m.dims})"


def _first(refs: list[str]) -> str:
    return refs[0] if refs else ""


_INLINE = {"add": _add, "mul": _mul, "concat": _concat, "flatten": _flatten, "reshape": _reshape,
           "permute": _permute, "select": _select, "chunk": _chunk, "matmul": _matmul,
           "index": _index, "roll": _roll}
