"""Stage 6 (optional), optimize: an inference-only model from a built one and its static graph.

    model, report = optimize(build(shaped), shaped)     # engine.build(spec, optimize=True)
    print(report.text())

Three rewrites, each decided from the graph (which node reads which), never by tracing:

1. fold: a batch norm whose only input is a conv (or a linear, for a 1-d batch norm on its
   [B, C] output) that nothing else reads becomes part of that conv's weight and bias (its
   eval-mode statistics), and the batch norm an `nn.Identity`; one with nothing to fold into
   (DenseNet's, after a concat) becomes a `ScaleShift`, one multiply-add;
2. fuse: an activation whose only input is such a conv (directly or through a folded batch norm)
   runs inside the conv's oneDNN call (a ReLU after a ScaleShift, inside that), and becomes an
   `nn.Identity`;
3. pack (CPU): every plain 2-d conv becomes a `PackedConv2d`: its weight reordered once into
   oneDNN's blocked format, its input made channels-last, its activation fused. One thread,
   this is what pays most (benchmarks/bench_optimize.py: channels-last with a prepacked weight
   runs a ResNet-50 1x1 conv at batch 16 in a third of eager's time; folding alone, a few %).

The generated `forward` is left as it is: only submodules are swapped. The result is a new
model (the one passed in is untouched) for inference only: it refuses training mode and inputs
that require grad, its parameters are frozen, and a packed conv's state_dict holds no weight
(save the plain model's weights; optimize after loading them). Outputs match the plain build
in eval mode within ~1e-6 of the output's largest magnitude (summation order differs).
`compile=True` hands the folded model, unpacked (Inductor lowers the convs its own way), to
`torch.compile` (30 s on the first call of a ResNet-18 on this project's CPU).
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn

from engine.compiler.ir import Graph, Node, Shaped
from engine.compiler.liveness import readers_of
from engine.compiler.walk import all_nodes

# activation module -> (oneDNN post-op name, its scalars, its algorithm); only those whose
# forward is torch's own, so a block that overrides forward is never fused by mistake
_UNARY = {
    nn.ReLU: lambda m: ("relu", [], ""),
    nn.ReLU6: lambda m: ("hardtanh", [0.0, 6.0], ""),
    nn.Hardtanh: lambda m: ("hardtanh", [float(m.min_val), float(m.max_val)], ""),
    nn.LeakyReLU: lambda m: ("leaky_relu", [float(m.negative_slope)], ""),
    nn.SiLU: lambda m: ("swish", [], ""),
    nn.Hardswish: lambda m: ("hardswish", [], ""),
    nn.Sigmoid: lambda m: ("sigmoid", [], ""),
    nn.Tanh: lambda m: ("tanh", [], ""),
    nn.GELU: lambda m: ("gelu", [], m.approximate),
}


@dataclass
class OptimizeReport:
    """What `optimize` did: folds (batch norm -> conv), fusions (activation -> conv), the packed
    convs and their layout, and what it left alone and why (node paths throughout)."""

    folded: list[tuple[str, str]] = field(default_factory=list)
    fused: list[tuple[str, str]] = field(default_factory=list)
    packed: list[str] = field(default_factory=list)
    layout: str = "as built"
    skipped: list[tuple[str, str]] = field(default_factory=list)
    compiled: bool = False

    def as_dict(self) -> dict:
        return {"folded": [list(p) for p in self.folded], "fused": [list(p) for p in self.fused],
                "packed": list(self.packed), "layout": self.layout,
                "skipped": [list(p) for p in self.skipped], "compiled": self.compiled}

    def text(self) -> str:
        lines = ["optimized for inference (eval mode, no gradients)"]
        lines += _section(f"folded {len(self.folded)} batch norm(s) into the conv/linear before them",
                          [f"{bn} -> {conv}" for bn, conv in self.folded])
        lines += _section(f"fused {len(self.fused)} activation(s) into the conv (or scale-and-shift) "
                          "before them",
                          [f"{act} -> {conv}" for act, conv in self.fused])
        lines.append(f"packed {len(self.packed)} conv(s) for oneDNN; layout: {self.layout}")
        lines += _section(f"skipped {len(self.skipped)}", [f"{p}: {why}" for p, why in self.skipped])
        if self.compiled:
            lines.append("compiled with torch.compile (Inductor)")
        return "\n".join(lines)


def _section(title: str, items: list[str]) -> list[str]:
    return [title + (":" if items else "")] + [f"  {item}" for item in items]


def optimize(model: nn.Module, shaped: Shaped, pack: bool = True, compile: bool = False,
             inplace: bool = False) -> tuple[nn.Module, OptimizeReport]:
    """An inference-only copy of `model` (built from `shaped`) with batch norms folded, activations
    fused and, on CPU, convs packed channels-last; and the report of what was done.

    `pack=False` keeps to what exporters understand (folds and scale-and-shifts); `compile=True`
    also runs `torch.compile`; `inplace=True` rewrites `model` itself (and the modules `shaped`
    holds: build's are the shape stage's) instead of a copy."""
    model = (model if inplace else copy.deepcopy(model)).eval()
    model.requires_grad_(False)
    report = OptimizeReport()
    rewrite = _Rewrite(model, shaped, report)
    for graph in _graphs(shaped):
        rewrite.fold(graph)
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    if pack and not compile and on_cpu:
        for graph in _graphs(shaped):
            rewrite.fuse(graph)
        rewrite.pack()
    elif pack and not on_cpu:
        report.skipped.append(("(all convs)", "packing is for CPU; this model is on another device"))
    # on each network: a multi-network spec's ModuleDict is never called itself
    for net in model.values() if shaped.spec.multi else [model]:
        net.register_forward_pre_hook(_inference_only)
    if compile:
        model, report.compiled = torch.compile(model), True
    return model, report


def _inference_only(module: nn.Module, inputs: tuple) -> None:
    """A forward pre-hook: an optimized model has no training mode and no backward."""
    if module.training:
        raise RuntimeError("an optimized model is inference-only: it has no training mode "
                           "(build without optimize to train)")
    if torch.is_grad_enabled() and any(getattr(x, "requires_grad", False) for x in inputs):
        raise RuntimeError("an optimized model is inference-only: its input requires grad "
                           "(build without optimize to differentiate through it)")


def _graphs(shaped: Shaped) -> list[Graph]:
    """Every graph of the spec: the networks and every block instance's body."""
    found = list(shaped.spec.networks.values())
    found += [node.body for node in all_nodes(shaped.spec) if node.body is not None]
    return found


class _Rewrite:
    """The state shared by the passes: the model, what reads what, and what was done so far."""

    def __init__(self, model: nn.Module, shaped: Shaped, report: OptimizeReport):
        self.model, self.shaped, self.report = model, shaped, report
        self.folded: dict[str, str] = {}  # batch norm path -> conv/linear path
        self.unary: dict[str, tuple] = {}  # conv path -> its fused activation
        self.scaled: set[str] = set()  # batch norms made a ScaleShift
        # nodes another node calls again (`share:`), and tensors held under two names (`tie:`)
        self.reused = {id(n.shared) for n in all_nodes(shaped.spec) if n.shared is not None}
        self.tensor_uses = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))

    def module(self, node: Node) -> nn.Module | None:
        if node.kind != "prim" or node.path not in self.shaped.nodes:
            return None
        return self.model.get_submodule(node.path)

    def called(self, *nodes: Node) -> bool:
        """Whether the generated forward of each node's graph calls its module by name: a swap
        only takes effect there (a forward that inlines an op, as `a.add_(b)`, skips it)."""
        for node in nodes:
            owner, _, name = node.path.rpartition(".")
            code = getattr(self.model.get_submodule(owner), "code", "")
            if f"self.{name}(" not in code and f"getattr(self, {name!r})(" not in code:
                return False
        return True

    def replace(self, path: str, new: nn.Module) -> None:
        owner, _, name = path.rpartition(".")
        self.model.get_submodule(owner)._modules[name] = new

    # ---- fold -----------------------------------------------------------------------------
    def fold(self, graph: Graph) -> None:
        readers = Counter(readers_of(graph))  # graph outputs and pass-through aliases read too
        for node in graph.nodes:
            bn = self.module(node)
            if not _is_batchnorm(bn):
                continue
            if not self.called(node):
                self.report.skipped.append((node.path, "the generated forward does not call it"))
                continue
            source, why = self._foldable(node, bn, graph, readers)
            if why:
                self._scale_shift(node, bn, why)
                continue
            _fold_into(self.module(source), bn)
            self.replace(node.path, nn.Identity())
            self.folded[node.path] = source.path
            self.report.folded.append((node.path, source.path))

    def _scale_shift(self, node: Node, bn: nn.Module, why: str) -> None:
        """A batch norm with nothing to fold into: one multiply-add with precomputed constants
        (a ReLU after it may join: `fuse`): with that ReLU, a third to a half of the time of
        BatchNorm2d + ReLU on DenseNet's maps at batch 1, where per-call overhead dominates."""
        if self._reused(node) or not isinstance(bn, nn.BatchNorm2d) or self.shaped.nodes[
                node.path].inputs[0].rank != 4:
            self.report.skipped.append((node.path, f"not folded: {why}"))
            return
        self.replace(node.path, ScaleShift(bn))
        self.scaled.add(node.path)
        self.report.skipped.append((node.path, f"not folded ({why}): a scale-and-shift"))

    def _foldable(self, node: Node, bn: nn.Module, graph: Graph,
                  readers: Counter) -> tuple[Node | None, str]:
        """The conv/linear node `node` (a batch norm) folds into, or why there is none."""
        source = graph.node(node.inputs[0].node) if len(node.inputs) == 1 else None
        target = self.module(source) if source is not None else None
        if not _is_plain(target, (nn.Conv2d, nn.Linear)) or not self.called(source):
            return None, "its input is not a plain conv or linear"
        if readers[source.name] != 1:
            return None, f"the output of {source.path} has other readers"
        if self._reused(node) or self._reused(source) or self.tensor_uses[id(target.weight)] > 1:
            return None, f"{source.path} or the batch norm is shared or tied"
        rank = self.shaped.nodes[source.path].outputs[0].rank
        if isinstance(target, nn.Linear) != isinstance(bn, nn.BatchNorm1d) or (
                isinstance(target, nn.Linear) and rank != 2):
            return None, f"its channels are not the output features of {source.path}"
        return source, ""

    def _reused(self, node: Node) -> bool:
        return node.shared is not None or id(node) in self.reused or bool(node.tie)

    # ---- fuse -----------------------------------------------------------------------------
    def fuse(self, graph: Graph) -> None:
        readers = Counter(readers_of(graph))  # graph outputs and pass-through aliases read too
        for node in graph.nodes:
            act = self.module(node)
            post_op = _post_op(act)
            if post_op is None or len(node.inputs) != 1 or self._reused(node) or not self.called(node):
                continue
            source = graph.node(node.inputs[0].node)
            if source is not None and source.path in self.scaled:
                self._fuse_scale_shift(node, source, post_op, readers)
                continue
            conv_node = self._conv_behind(source, graph)
            conv = self.module(conv_node) if conv_node is not None else None
            if not isinstance(conv, nn.Conv2d) or self._why_not_packable(conv_node, conv) or \
                    not self.called(conv_node):
                continue
            if readers[source.name] != 1 or conv_node.path in self.unary or self._reused(conv_node):
                self.report.skipped.append((node.path, f"the output of {source.path} has other "
                                            "readers, or its conv is shared"))
                continue
            conv_path = conv_node.path
            self.unary[conv_path] = post_op
            self.replace(node.path, nn.Identity())
            self.report.fused.append((node.path, conv_path))

    def _fuse_scale_shift(self, node: Node, source: Node, post_op: tuple, readers: Counter) -> None:
        """A ReLU whose only input is a ScaleShift is applied in place inside it."""
        if post_op[0] == "relu" and readers[source.name] == 1:
            self.model.get_submodule(source.path).relu = True
            self.replace(node.path, nn.Identity())
            self.report.fused.append((node.path, source.path))

    def _conv_behind(self, source: Node | None, graph: Graph) -> Node | None:
        """`source`, or the conv a folded batch norm `source` went into."""
        if source is None or source.path not in self.folded:
            return source
        return graph.node(self.folded[source.path].rpartition(".")[2])

    # ---- pack -----------------------------------------------------------------------------
    def pack(self) -> None:
        for node in all_nodes(self.shaped.spec):
            conv = self.module(node) if node.shared is None else None
            if conv is None or not isinstance(conv, nn.Conv2d):
                continue
            why = self._why_not_packable(node, conv)
            if why:
                self.report.skipped.append((node.path, f"not packed: {why}"))
                continue
            post_op = self.unary.get(node.path, ("none", [], ""))
            shape = self.shaped.nodes[node.path].inputs[0].shape
            self.replace(node.path, PackedConv2d(conv, post_op, shape))
            self.report.packed.append(node.path)
        if self.report.packed:
            self.report.layout = "channels_last (the packed convs' inputs)"

    def _why_not_packable(self, node: Node, conv: nn.Module) -> str:
        """Why the conv of `node` cannot become a PackedConv2d ("" when it can)."""
        if not self.called(node):
            return "the generated forward does not call it"
        if self.tensor_uses[id(conv.weight)] > 1:
            return "its weight is tied to another node's"
        if self.shaped.nodes[node.path].inputs[0].rank != 4:
            return "its input is not a batch of feature maps [B, C, H, W]"
        return _why_not_packable(conv)


def _is_plain(module: nn.Module | None, bases: tuple) -> bool:
    """An instance of one of torch's `bases` running torch's own forward, unparametrized."""
    if not isinstance(module, bases) or nn.utils.parametrize.is_parametrized(module):
        return False
    return any(type(module).forward is base.forward for base in bases if isinstance(module, base))


def _is_batchnorm(module: nn.Module | None) -> bool:
    return _is_plain(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and module.running_mean is not None


def _fold_into(target: nn.Module, bn: nn.Module) -> None:
    """torch's own folding (torch.nn.utils.fusion): weight * gamma / sqrt(var + eps) and
    (bias - mean) * gamma / sqrt(var + eps) + beta, as new frozen parameters of `target`."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights
    stats = (bn.running_mean, bn.running_var, bn.eps,
             bn.weight if bn.weight is not None else torch.ones_like(bn.running_mean),
             bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean))
    fuse = fuse_linear_bn_weights if isinstance(target, nn.Linear) else fuse_conv_bn_weights
    with torch.no_grad():
        weight, bias = fuse(target.weight, target.bias, *stats)
    target.weight = nn.Parameter(weight.detach(), requires_grad=False)
    target.bias = nn.Parameter(bias.detach(), requires_grad=False)


def _post_op(module: nn.Module | None) -> tuple | None:
    """The oneDNN post-op that computes `module`, if it is a plain activation oneDNN has."""
    for cls in type(module).__mro__ if module is not None else ():
        if cls in _UNARY:
            return _UNARY[cls](module) if type(module).forward is cls.forward else None
    return None


def _why_not_packable(conv: nn.Module) -> str:
    if not _is_plain(conv, (nn.Conv2d,)):
        return "its forward is not torch's Conv2d"
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return f"padding {conv.padding!r} ({conv.padding_mode})"
    if conv.weight.dtype != torch.float32:
        return f"weight dtype {conv.weight.dtype}"
    return ""


class PackedConv2d(nn.Module):
    """A Conv2d run as one oneDNN call on a weight reordered once (inference only).

    [B, C, H, W] -> [B, out, H', W'], channels-last in and out; `post_op` (name, scalars,
    algorithm) is the fused activation, ("none", [], "") for none. The packed weight is an
    opaque oneDNN tensor, kept as a plain attribute: it is in no state_dict.
    """

    def __init__(self, conv: nn.Conv2d, post_op: tuple = ("none", [], ""),
                 input_size: tuple[int, ...] | None = None):
        super().__init__()
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.post_op = post_op
        weight = conv.weight.detach()
        # oneDNN picks the weight's blocked format for an input size: without one, a strided
        # 3x3 ran 5x slower at batch 1 (the batch itself matters little: the spec's will do)
        self.packed_weight = torch.ops.mkldnn._reorder_convolution_weight(
            weight, self.padding, self.stride, self.dilation, self.groups,
            list(input_size) if input_size else None)
        self.bias = conv.bias.detach() if conv.bias is not None else None
        self.extra = f"{conv.in_channels}, {conv.out_channels}, k={tuple(weight.shape[2:])}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        name, scalars, algorithm = self.post_op
        return torch.ops.mkldnn._convolution_pointwise(
            x, self.packed_weight, self.bias, self.padding, self.stride, self.dilation,
            self.groups, name, scalars, algorithm)

    def extra_repr(self) -> str:
        return f"{self.extra}, stride={tuple(self.stride)}, post_op={self.post_op[0]}"


class ScaleShift(nn.Module):
    """An eval-mode BatchNorm2d as x * scale + shift (then ReLU if `relu`), inference only.

    [B, C, H, W] -> [B, C, H, W]; scale = weight / sqrt(var + eps), shift = bias - mean * scale.
    """

    def __init__(self, bn: nn.BatchNorm2d, relu: bool = False):
        super().__init__()
        with torch.no_grad():
            scale = (bn.running_var.double() + bn.eps).rsqrt()
            if bn.weight is not None:
                scale = scale * bn.weight.double()
            shift = -bn.running_mean.double() * scale
            if bn.bias is not None:
                shift = shift + bn.bias.double()
        dtype = bn.running_mean.dtype
        self.register_buffer("scale", scale.to(dtype).view(-1, 1, 1))
        self.register_buffer("shift", shift.to(dtype).view(-1, 1, 1))
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.addcmul(self.shift, x, self.scale)
        return y.relu_() if self.relu else y

    def extra_repr(self) -> str:
        return f"{self.scale.numel()}, relu={self.relu}"

