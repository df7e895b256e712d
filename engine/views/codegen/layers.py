"""Primitive blocks as torch layers: constructor arguments read back from the built module,
checked against it, inline forward expressions, and the spec's init rules."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from blocks.registry import block_args, inferred_args, lookup
from engine.compiler.init import INITS
from engine.compiler.ir import Graph, Node
from engine.views.codegen.literals import _A, _Builder, _child, _error, _is_attr, _lit, _Raw

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
    return [_A("in_channels", m.in_channels, positional=True),
            _A("out_channels", m.out_channels, positional=True),
            _A("kernel_size", _short(m.kernel_size)), _A("stride", _short(m.stride), 1),
            _A("padding", m.padding if isinstance(m.padding, str) else _short(m.padding), 0),
            _A("dilation", _short(m.dilation), 1), _A("groups", m.groups, 1),
            _A("bias", m.bias is not None, True), _A("padding_mode", m.padding_mode, "zeros")]


def _linear(m: nn.Linear):
    return [_A("in_features", m.in_features, positional=True),
            _A("out_features", m.out_features, positional=True),
            _A("bias", m.bias is not None, True)]


def _embedding(m: nn.Embedding):
    return [_A("num_embeddings", m.num_embeddings, positional=True),
            _A("embedding_dim", m.embedding_dim, positional=True),
            _A("padding_idx", m.padding_idx, None), _A("max_norm", m.max_norm, None),
            _A("norm_type", m.norm_type, 2.0), _A("scale_grad_by_freq", m.scale_grad_by_freq, False),
            _A("sparse", m.sparse, False)]


def _batchnorm(m: nn.modules.batchnorm._BatchNorm):
    return [_A("num_features", m.num_features, positional=True), _A("eps", m.eps, 1e-5),
            _A("momentum", m.momentum, 0.1), _A("affine", m.affine, True),
            _A("track_running_stats", m.track_running_stats, True)]


def _layernorm(m: nn.LayerNorm):
    shape = m.normalized_shape
    bias = m.bias is not None if m.elementwise_affine else True
    return [_A("normalized_shape", shape[0] if len(shape) == 1 else shape, positional=True),
            _A("eps", m.eps, 1e-5), _A("elementwise_affine", m.elementwise_affine, True),
            _A("bias", bias, True)]


def _attention(m: nn.MultiheadAttention):
    args = [_A("embed_dim", m.embed_dim, positional=True),
            _A("num_heads", m.num_heads, positional=True), _A("dropout", m.dropout, 0.0),
            _A("bias", m.in_proj_bias is not None, True),
            _A("add_bias_kv", m.bias_k is not None, False),
            _A("add_zero_attn", m.add_zero_attn, False)]
    if m.kdim != m.embed_dim or m.vdim != m.embed_dim:
        args += [_A("kdim", m.kdim), _A("vdim", m.vdim)]
    return [*args, _A("batch_first", m.batch_first, False)]


def _maxpool(m: nn.MaxPool2d):
    return [_A("kernel_size", m.kernel_size), _A("stride", m.stride), _A("padding", m.padding, 0),
            _A("dilation", m.dilation, 1), _A("return_indices", m.return_indices, False),
            _A("ceil_mode", m.ceil_mode, False)]


def _avgpool(m: nn.AvgPool2d):
    return [_A("kernel_size", m.kernel_size), _A("stride", m.stride), _A("padding", m.padding, 0),
            _A("ceil_mode", m.ceil_mode, False),
            _A("count_include_pad", m.count_include_pad, True),
            _A("divisor_override", m.divisor_override, None)]


def _inplace(m):
    return [_A("inplace", m.inplace, False)]


_LAYERS = {
    nn.Conv2d: _conv2d,
    nn.Linear: _linear,
    nn.Embedding: _embedding,
    nn.BatchNorm2d: _batchnorm,
    nn.BatchNorm1d: _batchnorm,
    nn.LayerNorm: _layernorm,
    nn.MultiheadAttention: _attention,
    nn.ReLU: _inplace,
    nn.SiLU: _inplace,
    nn.LeakyReLU: lambda m: [_A("negative_slope", m.negative_slope, 0.01),
                             _A("inplace", m.inplace, False)],
    nn.GELU: lambda m: [_A("approximate", m.approximate, "none")],
    nn.Sigmoid: lambda m: [],
    nn.Tanh: lambda m: [],
    nn.Identity: lambda m: [],
    nn.Softmax: lambda m: [_A("dim", m.dim)],
    nn.MaxPool2d: _maxpool,
    nn.AvgPool2d: _avgpool,
    nn.AdaptiveAvgPool2d: lambda m: [_A("output_size", m.output_size, positional=True)],
    nn.AdaptiveMaxPool2d: lambda m: [_A("output_size", m.output_size, positional=True),
                                     _A("return_indices", m.return_indices, False)],
    nn.Dropout: lambda m: [_A("p", m.p), _A("inplace", m.inplace, False)],
    nn.Flatten: lambda m: [_A("start_dim", m.start_dim, 1), _A("end_dim", m.end_dim, -1)],
}

# Blocks that are not torch subclasses but do exactly what a torchvision layer does:
# op -> (import line, the layer's class, its arguments).
_EQUIVALENTS = {
    "stochastic_depth": ("from torchvision.ops import StochasticDepth", StochasticDepth,
                         lambda m: [_A("p", m.p, positional=True),
                                    _A("mode", m.mode, positional=True)]),
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
    return (node.op == "attention" and type(module).__module__ == "blocks.attention"
            and isinstance(module, nn.MultiheadAttention))

class _Layers:
    """The _Codegen part that writes primitive blocks (their layers, init rules, parameters)."""

    def _param_line(self, node: Node, b: _Builder, inits: list) -> tuple:
        """A learned tensor: `self.token = nn.Parameter(torch.zeros(1, 1, 768))`."""
        tensor = self.shaped.nodes[node.path].module.weight
        stem = f"{node.name}_size" if _is_attr(f"{node.name}_size") else "size"
        args = [("pos", ("h", b.hole(d, f"{stem}{k}" if tensor.dim() > 1 else stem, node.name)))
                for k, d in enumerate(tensor.shape)]
        if tensor.dtype != torch.get_default_dtype():
            dtype = _Raw(f"torch.{str(tensor.dtype).removeprefix('torch.')}")
            args.append(("kw", "dtype", b.hole(dtype, "dtype", node.name)))
        tok = ("call", ("t", "nn.Parameter"), (("pos", ("call", ("t", "torch.zeros"),
                                                         tuple(args))),))
        rule = node.init if node.init != {} else "zeros"
        if not (rule == "zeros" or (type(rule) in (int, float) and rule == 0)):
            inits.append(("init", self._rule_tok(_child("self", node.name), rule, b, node.name,
                                                          node)))
        if _is_attr(node.name):
            return ("cat", (("t", f"self.{node.name} = "), tok))
        return ("cat", (("t", f"self.register_parameter({_lit(node.name)}, "), tok, ("t", ")")))
    def _init_loops(self, body: Graph) -> dict[type, list[Node]]:
        """Torch layer types whose every instance among a Sequential's children gets the same
        init rules (three or more of them): written `for layer in ...: if isinstance(...)`."""
        rules: dict[int, str] = {}
        for child in body.nodes:
            if child.kind == "prim":
                r = {**((self.spec.init or {}).get(child.op) or {}), **(child.init or {})}
                rules[id(child)] = repr(r) if r else ""
        out = {}
        prims = [c for c in body.nodes if c.kind == "prim"]
        for torch_cls in _LAYERS:
            members = [c for c in prims if isinstance(self.shaped.nodes[c.path].module, torch_cls)]
            kinds = {rules[id(c)] for c in members}
            if len(members) >= 3 and len(kinds) == 1 and "" not in kinds:
                out[torch_cls] = members
        return out

    # -- primitive blocks --
    def _inline(self, node: Node, module: nn.Module, refs: list[str]) -> str | None:
        """A parameter-free block written as an expression in the forward, or None."""
        cls = type(module)
        if not cls.__module__.startswith("blocks."):
            return None
        attrs = {k for k in vars(module) if not k.startswith("_") and k != "training"}
        op, x = node.op, refs[0] if refs else ""
        if op == "add" and not attrs and refs:
            return " + ".join(refs)
        if op == "mul" and not attrs and len(refs) == 2:
            return f"{refs[0]} * {refs[1]}"
        if op == "concat" and attrs == {"dim", "broadcast_batch"}:
            if module.broadcast_batch:
                self.helpers.setdefault("cat_broadcast_batch", _CAT_BROADCAST)
                return f"cat_broadcast_batch([{', '.join(refs)}], {module.dim})"
            return f"torch.cat([{', '.join(refs)}], {module.dim})"
        if op == "flatten" and isinstance(module, nn.Flatten) and cls.forward is nn.Flatten.forward:
            end = "" if module.end_dim == -1 else f", {module.end_dim}"
            return f"torch.flatten({x}, {module.start_dim}{end})"
        if op == "reshape" and attrs == {"shape"}:
            return f"{x}.reshape({x}.shape[0], {', '.join(map(str, module.shape))})"
        if op == "permute" and attrs == {"dims"}:
            return f"{x}.permute({', '.join(map(str, module.dims))})"
        if op == "select" and attrs == {"index", "dim"}:
            if module.dim == 1:
                return f"{x}[:, {module.index}]"
            return f"{x}.select({module.dim}, {module.index})"
        if op == "chunk" and attrs == {"chunks", "dim"}:
            return f"{x}.chunk({module.chunks}, {module.dim})"
        return None

    def _module_tok(self, node: Node, module: nn.Module, b: _Builder, owner: str,
                    mode: str) -> tuple:
        """The constructor call of a primitive block's module (mode: in a class or a Sequential)."""
        cls = type(module)
        layers, equivalents = _LAYERS, _EQUIVALENTS
        if node.op in equivalents:
            imp, layer, render = equivalents[node.op]
            args = render(module)
            if self._check(module, layer, args):
                self.imports.add(imp)
                return b.call(layer.__name__, args, owner)
        base = next((c for c in cls.__mro__ if c in layers), None)
        if base is not None:
            args = layers[base](module)
            if args is not None and self._check(module, base, args):
                extra = _members(cls, base)
                if mode == "class" and _attention_inline(node, module):
                    self._plain_attention.add(id(module))
                    return b.call(f"nn.{base.__name__}", args, owner)
                if not extra:
                    return b.call(f"nn.{base.__name__}", args, owner)
                if extra == {"forward"}:  # the torch layer with a forward of its own
                    self._helper(cls, node, base)
                    return b.call(cls.__name__, args, owner)
        self._helper(cls, node)  # anything else: the block's own class, copied
        result = self.shaped.nodes[node.path]
        info = lookup(node.op)
        values = dict(result.args)
        if info is not None:
            values.update(inferred_args(info, [i.shape for i in result.inputs]))
        args = [_A(a.name, values.get(a.name, a.default), a.default)
                for a in block_args(cls).values()]
        return b.call(cls.__name__, args, owner)

    def _check(self, module: nn.Module, cls: type, args: list[_A]) -> bool:
        """Whether `cls(*args)` builds the very module the engine built (compared on meta)."""
        mine = _fingerprint(module)
        key = (type(module), cls, repr(args), mine)
        if key not in self._checked:
            try:
                with torch.device("meta"):
                    ref = cls(*[a.value for a in args if a.positional],
                              **{a.name: a.value for a in args if not a.positional})
                self._checked[key] = _fingerprint(ref) == mine
            except Exception:  # the layer refuses these arguments: copy the block instead
                self._checked[key] = False
        return self._checked[key]

    def _init_toks(self, node: Node, module: nn.Module, expr: str, b: _Builder,
                   owner: str) -> list[tuple]:
        """The spec's `init:` rules for this node's op, overridden by the node's own."""
        rules = {**((self.spec.init or {}).get(node.op) or {}), **(node.init or {})}
        return [("init", self._rule_tok(f"{expr}.{pname}", rule, b, owner, node))
                for pname, rule in rules.items()
                if isinstance(getattr(module, pname, None), torch.Tensor)]

    def _rule_tok(self, target: str, rule: Any, b: _Builder, owner: str, node: Node) -> tuple:
        """An init rule (`zeros`, a number, `{name: {kwargs}}`) as an nn.init call."""
        if isinstance(rule, bool):
            raise _error(node, f"init rule {rule!r} is not a scheme")
        if isinstance(rule, (int, float)):
            return ("call", ("t", "nn.init.constant_"),
                    (("pos", ("t", target)), ("pos", ("h", b.hole(rule, "init_value", owner)))))
        if isinstance(rule, str):
            return ("call", ("t", f"nn.init.{INITS[rule].__name__}"), (("pos", ("t", target)),))
        (name, kwargs), = rule.items()
        args = tuple(("kw", k, b.hole(v, k, owner)) for k, v in (kwargs or {}).items())
        return ("call", ("t", f"nn.init.{INITS[name].__name__}"), (("pos", ("t", target)), *args))
