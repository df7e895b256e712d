"""`engine codegen`: a spec written out as one standalone, readable PyTorch source file.

The file imports only torch, torchvision and the standard library:

- a primitive block becomes the torch layer it is, with its real arguments
  (`nn.Conv2d(64, 128, kernel_size=3, padding=1, bias=False)`); a block that adds a forward
  of its own becomes a short subclass copied from blocks/ (`LayerNorm2d`), and anything else
  the block's class itself, copied without its `@register`;
- merges and tensor reshaping are written inline in the forward (`add = bn3 + input`,
  `torch.cat([...], 1)`, `x.permute(0, 2, 1)`), attention as `nn.MultiheadAttention`;
- a `seq:`, `repeat` or inline `graph:` that is a plain chain becomes an `nn.Sequential`;
- every other graph (a spec block instance, even a chain; a network) becomes a class whose
  forward is the engine's generated forward. Instances with the same structure share one class,
  whose constructor takes the literals that differ between them, named after the block's params
  where they match (`Bottleneck(in_channels, width, stride=1)`, `width * 4`);
- the spec's `init:` rules are written out in each `__init__`; ties and frozen nodes too.

Module and parameter names are the engine's, so an engine-built model's state_dict loads into
the generated one with strict=True and gives the same outputs. Every torch-layer rendering is
checked against the block's own module (same attributes, parameters and buffers) before use;
a block that fails the check is copied as source instead.
"""

from __future__ import annotations

import ast
import inspect
import json
import keyword
import math
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from blocks.registry import IN_SIZE, block_args, lookup
from engine.build import return_statement, var
from engine.init import INITS
from engine.ir import Diagnostic, Graph, Node, Ref, SpecError
from engine.shapes import Shaped

_REQ = inspect.Parameter.empty  # a constructor argument without a default
_MISSING = object()
# Names the generated file uses at module level: never reused for variables or parameters.
_GLOBALS = {"torch", "nn", "F", "Tensor", "OrderedDict", "torchvision", "math", "build",
            "cat_broadcast_batch", "self", "super", "getattr", "isinstance", "float"}
_STANDARD_IMPORTS = {
    "torch": "import torch",
    "nn": "from torch import nn",
    "F": "import torch.nn.functional as F",
    "Tensor": "from torch import Tensor",
    "OrderedDict": "from collections import OrderedDict",
    "math": "import math",
    "torchvision": "import torchvision",
}
_CAT_BROADCAST = '''\
def cat_broadcast_batch(tensors: list[Tensor], dim: int) -> Tensor:
    """torch.cat, first expanding batch-1 tensors (a learned class token) to the others' batch."""
    batch = max(t.shape[0] for t in tensors)
    return torch.cat([t.expand(batch, *t.shape[1:]) for t in tensors], dim)
'''


def codegen_source(shaped: Shaped, output: str | Path | None = None) -> str:
    """The standalone PyTorch source of a shaped spec (what `engine.analyze` returns)."""
    return _Codegen(shaped, str(output) if output is not None else "model.py").source()


def write_codegen(shaped: Shaped, output: str | Path) -> Path:
    """Write `codegen_source` to `output` (parent folders are created); return its path."""
    path = Path(output)
    text = codegen_source(shaped, output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---- torch layers: constructor arguments read back from the built module --------------------

@dataclass(frozen=True)
class _A:
    """One constructor argument of a rendered layer."""

    name: str
    value: Any
    default: Any = _REQ
    positional: bool = False


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


# ---- literals and tokens --------------------------------------------------------------------

def _lit(value: Any) -> str:
    """A Python literal, written the way people write them."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return f'float("{value}")'
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value) if value.isprintable() else repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_lit(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_lit(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _norm(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_norm(v) for v in value)
    return value


def _vkey(value: Any) -> tuple[str, str]:
    value = _norm(value)
    return type(value).__name__, repr(value)


def _same(a: Any, b: Any) -> bool:
    return _vkey(a) == _vkey(b)


def _is_attr(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _camel(name: str) -> str:
    out = "".join(p[:1].upper() + p[1:] for p in name.replace("-", "_").split("_")) or "Graph"
    return out if out[0].isalpha() else f"Block{out}"


def _child(expr: str, name: str, indexed: bool = False) -> str:
    if indexed:
        return f"{expr}[{name}]"
    return f"{expr}.{name}" if _is_attr(name) else f"getattr({expr}, {_lit(name)})"


# Tokens (hashable, so a class's structure can be a dict key):
#   ("t", text)  ("h", hole)  ("cat", toks)  ("cls", group id)
#   ("call", callee tok, args) with args ("pos", tok) | ("kw", name, hole)
#   ("seq", positional, ((name, tok), ...))  a multi-line nn.Sequential

@dataclass(frozen=True)
class _Hole:
    """A literal in a class body: what it is called if it becomes a parameter."""

    name: str
    owner: str
    default: Any = _REQ


class _Builder:
    """Collects one instance's literals (holes) while its class body is being written."""

    def __init__(self):
        self.values: list[Any] = []
        self.holes: list[_Hole] = []

    def hole(self, value: Any, name: str, owner: str, default: Any = _REQ) -> int:
        self.values.append(value)
        self.holes.append(_Hole(name, owner, default))
        return len(self.values) - 1

    def call(self, callee: str | tuple, args: list[_A], owner: str) -> tuple:
        toks = tuple(("pos", ("h", self.hole(a.value, a.name, owner, a.default))) if a.positional
                     else ("kw", a.name, self.hole(a.value, a.name, owner, a.default))
                     for a in args)
        return ("call", ("t", callee) if isinstance(callee, str) else callee, toks)


# ---- instances and classes ------------------------------------------------------------------

@dataclass
class _Param:
    """A constructor parameter of a generated class."""

    name: str
    holes: list[int]  # the literals it stands for (none: a block param used in `width * 4`)
    default: Any = _REQ
    block_param: str | None = None


@dataclass
class _Inst:
    """A graph that becomes an instance of a generated class."""

    node: Node | None  # None for a network
    graph: Graph
    path: str
    base: str  # class name stem
    order: int  # position in the model, for naming and ordering classes
    network: str | None = None
    children: list[_Inst] = field(default_factory=list)  # class instances directly inside
    block_args: dict | None = None  # a spec block instance's params
    height: int = 0
    values: list = field(default_factory=list)  # its literals, by hole
    group: _Group | None = None

    def param_value(self, p: _Param) -> Any:
        return self.values[p.holes[0]] if p.holes else self.block_args[p.block_param]


@dataclass(eq=False)
class _Group:
    """One generated class: the instances sharing a structure, and what varies between them."""

    gid: int
    base: str
    key: tuple
    lines: tuple  # __init__ statements (tokens)
    inits: tuple  # init, tie and freeze statements (tokens)
    forward: str
    holes: tuple
    insts: list[_Inst] = field(default_factory=list)
    params: list[_Param] = field(default_factory=list)
    text: dict[int, str] = field(default_factory=dict)  # hole -> literal, parameter or expression
    omitted: set[int] = field(default_factory=set)  # keyword holes left at their default
    name: str = ""

    def signature(self) -> list[_Param]:
        """Required parameters first, then those with defaults, each in order of first use."""
        return ([p for p in self.params if p.default is _REQ]
                + [p for p in self.params if p.default is not _REQ])


class _Codegen:
    """Writes one shaped spec as a source file (`source()`); used once per file."""

    def __init__(self, shaped: Shaped, output: str):
        self.shaped, self.spec, self.output = shaped, shaped.spec, output
        self.helpers: dict[str, str] = {}  # name -> source (copied classes, helper functions)
        self.imports: set[str] = set()  # import lines beyond the standard ones
        self.insts: list[_Inst] = []
        self.by_path: dict[str, _Inst] = {}
        self.groups: list[_Group] = []
        self._by_key: dict[tuple, _Group] = {}
        self.tops: list[_Inst] = []
        self._chains: dict[int, bool] = {}
        self._checked: dict[tuple, bool] = {}
        self._plain_attention: set[int] = set()  # attention modules written nn.MultiheadAttention
        self._copied: dict[str, type] = {}  # copied block classes by name

    def source(self) -> str:
        for net, graph in self.spec.networks.items():
            top = _Inst(None, graph, net if self.spec.multi else "", _camel(net), len(self.insts),
                        net)
            self.insts.append(top)
            self.tops.append(top)
            self._collect(top, graph)
        for top in self.tops:
            _set_heights(top)
        # Children before parents: a class's parameters are known before its callers are written.
        for height in sorted({i.height for i in self.insts}):
            fresh: list[_Group] = []
            for inst in (i for i in self.insts if i.height == height):
                group = self._render(inst)
                if group not in fresh:
                    fresh.append(group)
            for group in fresh:
                self._finalize(group)
        self._name_classes()
        return self._assemble()

    # -- the tree of classes --
    def _collect(self, owner: _Inst, graph: Graph) -> None:
        for node in graph.nodes:
            if node.kind != "graph" or node.shared is not None or node.body is None:
                continue
            if self._sequential(node):  # written inside its owner
                self._collect(owner, node.body)
                continue
            block = self._block_args(node)
            stem = node.op if block is not None or node.name.isdigit() else node.name
            inst = _Inst(node, node.body, node.path, _camel(stem), len(self.insts),
                         block_args=block)
            self.insts.append(inst)
            self.by_path[node.path] = inst
            owner.children.append(inst)
            self._collect(inst, node.body)

    def _sequential(self, node: Node) -> bool:
        """A `seq:`, `repeat` or inline `graph:` that is a plain chain becomes an nn.Sequential
        (a spec block stays a class of its own, even when it is a chain)."""
        if id(node) not in self._chains:
            self._chains[id(node)] = (node.body is not None and self._block_args(node) is None
                                      and _chain(node.body))
        return self._chains[id(node)]

    def _block_decls(self, op: str) -> dict:
        blocks = (self.spec.doc or {}).get("blocks") or {}
        block = blocks.get(op) if isinstance(blocks, dict) else None
        decls = block.get("params") if isinstance(block, dict) else None
        return decls if isinstance(decls, dict) else {}

    def _block_args(self, node: Node) -> dict | None:
        """A spec block instance's params: its arguments, and the literal defaults."""
        blocks = (self.spec.doc or {}).get("blocks") or {}
        if node.repeat or node.op not in blocks:
            return None
        out = {}
        for name, decl in self._block_decls(node.op).items():
            if name in node.args:
                out[name] = node.args[name]
            elif _literal_default(decl):
                out[name] = decl
        return out

    # -- one instance: its class body, with its literals as holes --
    def _render(self, inst: _Inst) -> _Group:
        b = _Builder()
        lines: list[tuple] = []
        inits: list[tuple] = []
        fwd: list[str] = []
        alias: dict[str, str] = {}  # parameters and pass-throughs, referred to directly
        graph = inst.graph
        scope = graph.nodes[0].path.rpartition(".")[0] if graph.nodes else inst.path
        for node in graph.nodes:
            out = self._var(node.name)
            refs = [self._ref(r, scope, alias) for r in node.inputs]
            attr = _child("self", node.name)
            if node.kind == "pass":
                alias[node.name] = refs[0]
                continue
            if node.kind == "param":
                alias[node.name] = attr
                lines.append(self._param_line(node, b, inits))
                if node.freeze:
                    inits.append(("freeze", ("t", f"{attr}.requires_grad_(False)")))
                continue
            call = _child("self", (node.shared or node).name)
            if node.kind == "prim":
                module = self.shaped.nodes[node.path].module
                expr = self._inline(node, module, refs)
                if expr is not None:
                    fwd.append(f"{out} = {expr}")
                    continue
                if node.shared is None:
                    lines.append(_assign(node.name, self._module_tok(node, module, b, node.name,
                                                                     "class")))
                    inits += self._init_toks(node, module, attr, b, node.name)
                if id(module) in self._plain_attention:  # (q, k, v) -> out, as torchvision
                    q = refs[0]
                    k = refs[1] if len(refs) > 1 else q
                    v = refs[2] if len(refs) > 2 else k
                    fwd.append(f"{out} = {call}({q}, {k}, {v}, need_weights=False)[0]")
                else:
                    fwd.append(f"{out} = {call}({', '.join(refs)})")
            else:
                fwd.append(f"{out} = {call}({', '.join(refs)})")
                if node.shared is None:
                    lines.append(_assign(node.name, self._graph_tok(node, attr, b, inits,
                                                                    node.name)))
            if node.freeze and node.shared is None:
                inits.append(("freeze", ("t", f"{attr}.requires_grad_(False)")))
        if inst.node is None:
            inits += self._tie_toks(graph)
        forward = self._forward(graph, fwd, scope, alias, top=inst.node is None)
        key = (("network", inst.network) if inst.node is None else inst.base, tuple(lines),
               tuple(inits), forward, tuple(b.holes))
        group = self._by_key.get(key)
        if group is None:
            group = _Group(len(self.groups), inst.base, key, tuple(lines), tuple(inits), forward,
                           tuple(b.holes))
            self.groups.append(group)
            self._by_key[key] = group
        group.insts.append(inst)
        inst.group, inst.values = group, b.values
        return group

    def _var(self, name: str) -> str:
        out = var(name)
        return f"{out}_" if out in _GLOBALS else out

    def _ref(self, ref: Ref, scope: str, alias: dict[str, str]) -> str:
        """A reference as Python: `name`, or `name[k]` for output k of a multi-output node."""
        base = alias.get(ref.node) or self._var(ref.node)
        source = self.shaped.nodes.get(f"{scope}.{ref.node}" if scope else ref.node)
        if ref.output is None or (source is not None and len(source.outputs) == 1):
            return base
        names = source.output_names if source else ()
        index = names.index(ref.output) if ref.output in names else int(ref.output)
        return f"{base}[{index}]"

    def _forward(self, graph: Graph, lines: list[str], scope: str, alias: dict, top: bool) -> str:
        params = ", ".join(["self", *(self._var(n) for n in graph.inputs)])
        outs = {name: self._ref(ref, scope, alias) for name, ref in graph.outputs.items()}
        body = "\n".join(f"        {line}" for line in [*lines, return_statement(outs, top)])
        return f"    def forward({params}):\n{body}\n"

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

    def _graph_tok(self, node: Node, expr: str, b: _Builder, inits: list, owner: str) -> tuple:
        """A graph child: an nn.Sequential written out, or a call of its generated class."""
        if not self._sequential(node):
            inst = self.by_path[node.path]
            args = tuple(("pos", ("h", b.hole(inst.param_value(p), p.name, owner, p.default)))
                         if p.default is _REQ else
                         ("kw", p.name, b.hole(inst.param_value(p), p.name, owner, p.default))
                         for p in inst.group.signature())
            return ("call", ("cls", inst.group.gid), args)
        nodes = node.body.nodes
        positional = _positional(node.body)
        loops = self._init_loops(node.body)
        for torch_cls, children in loops.items():
            first = children[0]
            module = self.shaped.nodes[first.path].module
            body = tuple(tok for _, tok in self._init_toks(first, module, _LOOP_VAR, b, owner))
            inits.append(("init", ("loop", expr, f"nn.{torch_cls.__name__}", body)))
        looped = {id(c) for children in loops.values() for c in children}
        items = []
        for child in nodes:
            cexpr = _child(expr, child.name, indexed=positional)
            cowner = f"{owner}_{child.name}"
            if child.kind == "prim":
                module = self.shaped.nodes[child.path].module
                tok = self._module_tok(child, module, b, cowner, "seq")
                if id(child) not in looped:
                    inits += self._init_toks(child, module, cexpr, b, cowner)
            else:
                tok = self._graph_tok(child, cexpr, b, inits, cowner)
            if child.freeze:
                inits.append(("freeze", ("t", f"{cexpr}.requires_grad_(False)")))
            items.append((child.name, tok))
        return ("seq", positional, tuple(items))

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
        if node.op in _EQUIVALENTS:
            imp, layer, render = _EQUIVALENTS[node.op]
            args = render(module)
            if self._check(module, layer, args):
                self.imports.add(imp)
                return b.call(layer.__name__, args, owner)
        base = next((c for c in cls.__mro__ if c in _LAYERS), None)
        if base is not None:
            args = _LAYERS[base](module)
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
        if info is not None and info.in_dim is not None and result.inputs:
            values[IN_SIZE] = result.inputs[0].shape[info.in_dim]
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

    def _tie_toks(self, graph: Graph) -> list[tuple]:
        """`tie:` at the network's top: one Parameter under two names, after all init."""
        out = []

        def walk(g: Graph, expr: str, indexed: bool) -> None:
            for node in g.nodes:
                here = _child(expr, node.name, indexed=indexed)
                for pname, target in node.tie.items():
                    owner, _, tname = str(target).rpartition(".")
                    out.append(("tie", ("t", f"{here}.{pname} = {self._path_expr(graph, owner)}.{tname}")))
                if node.body is not None and node.shared is None:
                    walk(node.body, here, self._sequential(node) and _positional(node.body))

        walk(graph, "self", False)
        return out

    def _path_expr(self, graph: Graph, path: str) -> str:
        """`self.layer1[0].conv1` for the node path `layer1.0.conv1` of a network."""
        expr, g, indexed = "self", graph, False
        for seg in path.split(".") if path else []:
            node = g.node(seg)
            expr = _child(expr, seg, indexed=indexed)
            if node is None or node.body is None:
                break
            g = node.body
            indexed = self._sequential(node) and _positional(g)
        return expr

    # -- copied block sources --
    def _helper(self, cls: type, node: Node, base: type | None = None) -> None:
        """Add a block's class (or, over a torch base, its forward only) to the file."""
        name = cls.__name__
        if self._copied.get(name, cls) is not cls:
            raise _error(node, f"two different block classes are named {name}",
                         "rename one of them in blocks/")
        if name in self.helpers:
            return
        self._copied[name] = cls
        module = sys.modules[cls.__module__]
        source = inspect.getsource(module)
        tree = ast.parse(source)
        lines = source.splitlines()
        cdef = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
        if cdef is None:
            raise _error(node, f"cannot find the source of block class {name}")
        if base is not None:
            fdef = next(n for n in cdef.body if isinstance(n, ast.FunctionDef)
                        and n.name == "forward")
            start = _first_line(fdef)
            doc = " ".join((inspect.getdoc(cls) or "").split("\n\n")[0].split())
            text = "\n".join([f"class {name}(nn.{base.__name__}):",
                              f'    """{doc}"""' if doc else "", "",
                              *lines[start - 1:fdef.end_lineno]]) + "\n"
            used = _names(fdef)
        else:  # from the `class` line: decorators (`@register`) stay behind
            drop = _engine_only(cdef)
            skip = {n for d in drop for n in range(_first_line(d), d.end_lineno + 1)}
            kept = [line for n, line in enumerate(lines[cdef.lineno - 1:cdef.end_lineno],
                                                  cdef.lineno) if n not in skip]
            kept = [line for i, line in enumerate(kept)  # no doubled blank lines left behind
                    if line.strip() or (i + 1 < len(kept) and kept[i + 1].strip())]
            text = "\n".join(kept) + "\n"
            used = _names(cdef, skip=[*cdef.decorator_list, *drop])
        self.helpers[name] = ""  # reserve its place: dependencies go after it, in use order
        self._dependencies(used - {name}, tree, lines, module, node)
        self.helpers[name] = text

    def _dependencies(self, used: set[str], tree: ast.Module, lines: list[str], module,
                      node: Node) -> None:
        """Module-level helpers a copied class uses (`_pair`), and its imports."""
        for name in sorted(used):
            if name not in vars(module):
                continue  # a local name or a builtin
            if name in _STANDARD_IMPORTS and vars(module)[name] is _standard(name):
                continue  # imported the usual way at the top of the file
            defn = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                         and n.name == name), None)
            if isinstance(defn, ast.ClassDef):
                self._helper(vars(module)[name], node)
            elif isinstance(defn, ast.FunctionDef):
                text = "\n".join(lines[_first_line(defn) - 1:defn.end_lineno]) + "\n"
                if name in self.helpers:  # ("" while it is being added)
                    if self.helpers[name] not in ("", text):
                        raise _error(node, f"two different helper functions are named {name}",
                                     "rename one of them in blocks/")
                    continue
                self.helpers[name] = ""
                self._dependencies(_names(defn) - {name}, tree, lines, module, node)
                self.helpers[name] = text
            else:
                self.imports.add(_import_line(tree, name, node))

    # -- what varies between the instances of a class becomes its parameters --
    def _finalize(self, group: _Group) -> None:
        insts = group.insts
        clusters: dict[tuple, list[int]] = {}  # literals equal in every instance: one parameter
        for i, hole in enumerate(group.holes):
            vec = tuple(_vkey(inst.values[i]) for inst in insts)
            if len(set(vec)) == 1:
                value = insts[0].values[i]
                group.text[i] = _lit(value)
                if hole.default is not _REQ and _same(value, hole.default):
                    group.omitted.add(i)
            else:
                clusters.setdefault(vec, []).append(i)
        block: dict[str, list] = {}  # the block's params, where every instance has a value
        if all(inst.block_args is not None for inst in insts):
            for name in insts[0].block_args:
                values = [inst.block_args.get(name, _MISSING) for inst in insts]
                if all(v is not _MISSING for v in values) and _is_attr(name) and \
                        name not in _GLOBALS:
                    block[name] = values
        decls = ({k: v for k, v in self._block_decls(insts[0].node.op).items()
                  if _literal_default(v)} if block else {})
        taken = set(_GLOBALS) | set(insts[0].block_args or {})  # fresh names avoid both
        params: dict[str, tuple[int, _Param]] = {}  # name -> (first hole using it, parameter)
        for holes in clusters.values():  # a literal that is a block param is named after it
            values = [inst.values[holes[0]] for inst in insts]
            match = next((p for p, pv in block.items()
                          if p not in params and all(_same(a, v) for a, v in zip(pv, values))),
                         None)
            if match is not None:
                params[match] = (holes[0], _Param(match, holes, decls.get(
                    match, group.holes[holes[0]].default), match))
                for i in holes:
                    group.text[i] = match
        for holes in clusters.values():
            if holes[0] in group.text:
                continue
            first = group.holes[holes[0]]
            if (multiple := _multiple([inst.values[holes[0]] for inst in insts], block)):
                name, k = multiple
                if name not in params:
                    params[name] = (holes[0], _Param(name, [], decls.get(name, _REQ), name))
                params[name] = (min(params[name][0], holes[0]), params[name][1])
                text = f"{name} * {k}"
            else:
                text = _fresh(first.name, first.owner, taken)
                taken.add(text)
                params[text] = (holes[0], _Param(text, holes, first.default))
            for i in holes:
                group.text[i] = text
        group.params = [p for _, p in sorted(params.values(), key=lambda fp: fp[0])]

    def _name_classes(self) -> None:
        """Networks after the spec; the rest after their op, numbered: Bottleneck, Bottleneck2."""
        used = set(self.helpers) | _GLOBALS
        groups = sorted(self.groups, key=lambda g: min(i.order for i in g.insts))
        for g in [*(t.group for t in self.tops), *(g for g in groups if g.insts[0].node)]:
            name, n = g.base, 2
            while name in used:
                name, n = f"{g.base}{n}", n + 1
            used.add(name)
            g.name = name

    # -- writing --
    def _tok(self, tok: tuple, group: _Group, indent: int) -> str:
        """A token as text; `indent` is the column of the line the text starts on."""
        kind = tok[0]
        if kind == "t":
            return tok[1]
        if kind == "h":
            return group.text[tok[1]]
        if kind == "cat":
            return "".join(self._tok(t, group, indent) for t in tok[1])
        if kind == "cls":
            return self.groups[tok[1]].name
        if kind == "call":
            parts = [self._tok(arg[1], group, indent) if arg[0] == "pos"
                     else f"{arg[1]}={group.text[arg[2]]}"
                     for arg in tok[2] if arg[0] == "pos" or arg[2] not in group.omitted]
            return f"{self._tok(tok[1], group, indent)}({', '.join(parts)})"
        if kind == "loop":
            _, seq, cls, body = tok
            v = next(n for n in ("layer", "module", "child", "m") if n not in {
                p.name for p in group.params})
            pad = " " * (indent + 8)
            lines = [f"for {v} in {seq}:", " " * (indent + 4) + f"if isinstance({v}, {cls}):"]
            lines += [pad + self._tok(t, group, indent + 8).replace(_LOOP_VAR, v) for t in body]
            return "\n".join(lines)
        if kind == "seq":
            positional, items = tok[1], tok[2]
            inner = [(name, self._tok(t, group, indent + 4)) for name, t in items]
            if positional:
                entries = [text for _, text in inner]
                head, tail = "nn.Sequential(", ")"
            else:
                entries = [f"({_lit(name)}, {text})" for name, text in inner]
                head, tail = "nn.Sequential(OrderedDict([", "]))"
            one = head + ", ".join(entries) + tail
            if "\n" not in one and indent + len(one) <= 80:
                return one
            pad = " " * (indent + 4)
            return head + "\n" + "".join(f"{pad}{e},\n" for e in entries) + " " * indent + tail
        raise ValueError(f"unknown token {tok!r}")

    def _class_text(self, g: _Group) -> str:
        sig = ["self"] + [p.name if p.default is _REQ else f"{p.name}={_lit(p.default)}"
                          for p in g.signature()]
        header = f"    def __init__({', '.join(sig)}):"
        if len(header) > 100:
            header = "    def __init__(\n" + "".join(f"        {s},\n" for s in sig) + "    ):"
        body = ["super().__init__()", *(self._tok(line, g, 8) for line in g.lines)]
        for kind, comment in _EPILOGUE.items():
            toks = [tok for k, tok in g.inits if k == kind]
            if toks:
                body += ["", comment, *(self._tok(tok, g, 8) for tok in toks)]
        init = "\n".join(f"        {s}" if s else "" for s in body)
        return (f"class {g.name}(nn.Module):\n    \"\"\"{self._label(g)}\"\"\"\n\n"
                f"{header}\n{init}\n\n{g.forward}")

    def _label(self, g: _Group) -> str:
        first = g.insts[0]
        if first.node is None:
            shapes = self.shaped.inputs.get(first.network, {})
            ins = ", ".join(f"{n} {list(i.shape)}" for n, i in shapes.items())
            what = (f"network `{first.network}` of {self.spec.name}" if self.spec.multi
                    else f"`{self.spec.name}` model")
            return f"The {what}: {ins} -> {', '.join(first.graph.outputs)}."
        node = first.node
        what = f"`{node.op}` block" if first.block_args is not None else f"`{node.name}` graph"
        paths = [i.path for i in g.insts]
        where = ", ".join(paths) if len(paths) <= 2 else f"{paths[0]} and {len(paths) - 1} more"
        text = f"The spec's {what}, at {where}."
        return text if len(text) <= 88 else f"The spec's {what} ({len(paths)} in the model)."

    def _assemble(self) -> str:
        classes = sorted((g for g in self.groups if g.insts[0].node is not None),
                         key=lambda g: (g.insts[0].height, min(i.order for i in g.insts)))
        parts = [text.rstrip("\n") for text in self.helpers.values()]
        parts += [self._class_text(g).rstrip("\n")
                  for g in [*classes, *(t.group for t in self.tops)]]
        parts.append(self._build_function())
        body = "\n\n\n".join(parts) + "\n\n\n" + self._main_block()
        return self._header() + "\n" + _imports(body, self.imports) + "\n\n\n" + body

    def _build_function(self) -> str:
        if not self.spec.multi:
            return (f"def build() -> nn.Module:\n"
                    f"    \"\"\"A freshly initialised {self.spec.name}.\"\"\"\n"
                    f"    return {self.tops[0].group.name}()")
        nets = ", ".join(f"{_lit(t.network)}: {t.group.name}()" for t in self.tops)
        return ("def build() -> nn.ModuleDict:\n"
                f"    \"\"\"The networks of {self.spec.name}, freshly initialised.\"\"\"\n"
                f"    return nn.ModuleDict({{{nets}}})")

    def _main_block(self) -> str:
        lines = ['if __name__ == "__main__":', "    model = build().eval()",
                 "    with torch.no_grad():"]
        for top in self.tops:
            args = []
            for name, info in self.shaped.inputs.get(top.network, {}).items():
                lines.append(f"        {self._var(name)} = {_example(info)}")
                args.append(self._var(name))
            target = f"model[{_lit(top.network)}]" if self.spec.multi else "model"
            label = f"{top.network}: " if self.spec.multi else ""
            lines.append(f"        out = {target}({', '.join(args)})")
            if len(top.graph.outputs) > 1:
                shapes = "{k: tuple(v.shape) for k, v in out.items()}"
                lines.append(f"        print({_lit(label)}, {shapes})" if label
                             else f"        print({shapes})")
            else:
                (output, ref), = top.graph.outputs.items()
                source = self.shaped.nodes.get(f"{top.path}.{ref.node}" if top.path else ref.node)
                several = ref.output is None and source is not None and len(source.outputs) > 1
                shape = "[tuple(t.shape) for t in out]" if several else "tuple(out.shape)"
                lines.append(f"        print({_lit(label + output)}, {shape})")
        return "\n".join(lines) + "\n"

    def _header(self) -> str:
        from engine.merge import SPECS_DIR
        path = Path(self.spec.file)
        bundled = path.resolve().parent == SPECS_DIR.resolve()
        where = f"specs/{path.name}" if bundled else str(path)
        command = f"engine codegen {path.stem if bundled else path}{self._sets()} -o {self.output}"
        lines = [f"# Generated by `engine codegen` from {where} (spec `{self.spec.name}`).",
                 "# Do not edit; regenerate with:", f"#     {command}"]
        params = ", ".join(f"{k}={_lit(v)}" for k, v in (self.spec.params or {}).items())
        if params:
            lines += textwrap.wrap(f"params: {params}", 96, initial_indent="# ",
                                   subsequent_indent="#     ", break_on_hyphens=False)
        lines += ["# Standalone: imports only torch, torchvision and the standard library.",
                  "# Module names match the engine's: the state_dict of a model built with",
                  "# `engine.build` loads into this one with strict=True."]
        doc = _spec_comment(path) or f"The {self.spec.name} model."
        doc = doc.replace("\\", "\\\\").replace('"""', "'''")
        return "\n".join(lines) + f'\n"""{doc}\n"""\n'

    def _sets(self) -> str:
        """`--set` arguments for the params that differ from the spec file's own values."""
        try:
            from engine.merge import load_merged
            raw = load_merged(Path(self.spec.file)).get("params") or {}
        except Exception:  # only a comment depends on it: never fail the generation over it
            return ""
        out = []
        for key, value in (self.spec.params or {}).items():
            base = raw.get(key, _MISSING)
            if isinstance(base, str) and "$" in base:
                continue
            if base is _MISSING or not _same(_plain(base), _plain(value)):
                text = value if isinstance(value, str) else json.dumps(_plain(value),
                                                                      separators=(",", ":"))
                plain = text.replace("_", "").replace(".", "").replace("-", "").isalnum()
                out.append(f" --set {key}={text}" if plain else f" --set '{key}={text}'")
        return "".join(out)


# ---- small pieces -----------------------------------------------------------------------------

def _set_heights(inst: _Inst) -> int:
    inst.height = 1 + max((_set_heights(c) for c in inst.children), default=-1)
    return inst.height


def _chain(graph: Graph) -> bool:
    if len(graph.inputs) != 1 or len(graph.outputs) != 1 or not graph.nodes:
        return False
    prev = next(iter(graph.inputs))
    for node in graph.nodes:
        if node.kind not in ("prim", "graph") or node.shared is not None:
            return False
        if node.inputs != [Ref(prev)]:
            return False
        prev = node.name
    return next(iter(graph.outputs.values())) == Ref(prev)


def _positional(graph: Graph) -> bool:
    return [n.name for n in graph.nodes] == [str(i) for i in range(len(graph.nodes))]


def _attention_inline(node: Node, module: nn.Module) -> bool:
    """The attention block in a class: `nn.MultiheadAttention`, called (q, k, v)[0] inline."""
    return (node.op == "attention" and type(module).__module__ == "blocks.attention"
            and isinstance(module, nn.MultiheadAttention))


def _assign(name: str, tok: tuple) -> tuple:
    if _is_attr(name):
        return ("cat", (("t", f"self.{name} = "), tok))
    return ("cat", (("t", f"self.add_module({_lit(name)}, "), tok, ("t", ")")))


_TYPE_NAMES = {"int", "float", "bool", "str", "list"}
_LOOP_VAR = "\x00layer"  # the loop variable of an init loop, named when the class is written
_EPILOGUE = {  # what follows the layers in an __init__, in this order
    "init": "# initialisation: the spec's `init:` rules",
    "freeze": "# frozen (`freeze: true`): not trained",
    "tie": "# tied (`tie:`): one tensor under two names",
}


def _literal_default(decl: Any) -> bool:
    """A block param declared with a plain default (not `int`, not an expression)."""
    if isinstance(decl, bool) or isinstance(decl, (int, float)):
        return True
    return isinstance(decl, str) and "$" not in decl and decl not in _TYPE_NAMES


def _multiple(values: list, block: dict[str, list]) -> tuple[str, int] | None:
    """`values` == k * a block param, for one integer k >= 2 (written `width * 4`)."""
    if not all(type(v) is int for v in values):
        return None
    for name, pv in block.items():
        if all(type(p) is int and p > 0 and v % p == 0 for p, v in zip(pv, values)):
            ks = {v // p for p, v in zip(pv, values)}
            if len(ks) == 1 and (k := ks.pop()) >= 2:
                return name, k
    return None


def _fresh(name: str, owner: str, taken: set[str]) -> str:
    """A parameter name from the argument's own name, prefixed by its module if taken."""
    name = name if _is_attr(name) else "arg"
    if name not in taken:
        return name
    prefixed = f"{owner}_{name}" if _is_attr(f"{owner}_{name}") else f"arg_{name}"
    candidate, n = prefixed, 2
    while candidate in taken:
        candidate, n = f"{prefixed}{n}", n + 1
    return candidate


class _Raw:
    """A value written as given (an expression such as `torch.float16`, not a literal)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _standard(name: str) -> Any:
    import collections

    import torch.nn.functional as F
    import torchvision
    return {"torch": torch, "nn": nn, "F": F, "Tensor": torch.Tensor,
            "OrderedDict": collections.OrderedDict, "math": math,
            "torchvision": torchvision}[name]


def _first_line(defn: ast.AST) -> int:
    return min([defn.lineno, *(d.lineno for d in getattr(defn, "decorator_list", []))])


def _engine_only(cdef: ast.ClassDef) -> list[ast.FunctionDef]:
    """Methods of a block class that only the engine calls (`label` for diagrams): not
    nn.Module's, not dunders, and not used by the class itself."""
    methods = [n for n in cdef.body if isinstance(n, ast.FunctionDef)]
    out = []
    for m in methods:
        if m.name.startswith("__") or hasattr(nn.Module, m.name) or m.name == "forward":
            continue
        used = any(isinstance(n, (ast.Attribute, ast.Name)) and
                   getattr(n, "attr", getattr(n, "id", None)) == m.name
                   for other in methods if other is not m for n in ast.walk(other))
        if not used:
            out.append(m)
    return out


def _names(tree: ast.AST, skip: list | None = None) -> set[str]:
    skipped = {id(n) for s in (skip or []) for n in ast.walk(s)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in skipped}


def _import_line(tree: ast.Module, name: str, node: Node) -> str:
    """The block module's own import of `name`, if it is from torch, torchvision or stdlib."""
    for stmt in tree.body:
        if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        for alias in stmt.names:
            if (alias.asname or alias.name.split(".")[0]) != name:
                continue
            origin = stmt.module if isinstance(stmt, ast.ImportFrom) else alias.name
            root = (origin or "").split(".")[0]
            relative = isinstance(stmt, ast.ImportFrom) and stmt.level
            if not relative and (root in ("torch", "torchvision")
                                 or (root in sys.stdlib_module_names and root != "__future__")):
                if isinstance(stmt, ast.ImportFrom):
                    return ast.unparse(ast.ImportFrom(module=stmt.module, names=[alias], level=0))
                return ast.unparse(ast.Import(names=[alias]))
    raise _error(node, f"block '{node.op}' uses '{name}', which is not from torch, torchvision "
                       "or the standard library", "a generated file may import only those")


def _error(node: Node, message: str, hint: str = "") -> SpecError:
    return SpecError([Diagnostic(f"codegen: {message}", node.loc, node.path, hint)])


def _example(info) -> str:
    shape = ", ".join(map(str, info.shape))
    if info.dtype.startswith("float"):
        dtype = "" if info.dtype == "float32" else f", dtype=torch.{info.dtype}"
        return f"torch.randn({shape}{dtype})"
    return f"torch.zeros({shape}, dtype=torch.{info.dtype})"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _spec_comment(path: Path) -> str:
    """The spec file's leading comment (what it is, the paper), without its command lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    out = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        line = line.lstrip("#").strip()
        if not line.startswith("engine "):
            out.append(line)
    return "\n".join(out).strip()


def _isort_key(name: str) -> tuple:
    """isort's order-by-type: CONSTANTS, Classes, then functions and modules."""
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name


def _imports(body: str, extra: set[str]) -> str:
    """The import block: standard names the body uses, plus what copied blocks import."""
    used = {n.id for n in ast.walk(ast.parse(body)) if isinstance(n, ast.Name)}
    lines = {_STANDARD_IMPORTS[n] for n in used if n in _STANDARD_IMPORTS} | extra
    lines |= {"import torch", "from torch import nn"}

    def section(line: str) -> int:
        return 0 if line.split()[1].split(".")[0] in sys.stdlib_module_names else 1

    merged: dict[str, set[str]] = {}
    for line in [x for x in lines if x.startswith("from ") and " as " not in x]:
        module, names = line[5:].split(" import ")
        merged.setdefault(module, set()).update(n.strip() for n in names.split(","))
        lines.discard(line)
    lines |= {f"from {m} import {', '.join(sorted(n, key=_isort_key))}"
              for m, n in merged.items()}
    ordered = sorted(lines, key=lambda s: (section(s), s.startswith("from "), s.split()[1], s))
    out = ["from __future__ import annotations", ""]
    for i, line in enumerate(ordered):
        if i and section(line) != section(ordered[i - 1]):
            out.append("")
        out.append(line)
    return "\n".join(out)
