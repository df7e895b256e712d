"""Stage 4, shapes: infer every tensor shape statically, on the `meta` device.

Each primitive node is constructed on `meta` (no memory) with its `in_size` filled from the
upstream shape and its default initialisation skipped, then run on meta tensors; whatever
PyTorch says about a mismatch is reported against the spec node with both shapes. The meta
modules are kept: the build stage materialises exactly these and initialises them once
(compiler/init.py), so shapes are never computed twice and no weight is initialised twice.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from engine.blocks.registry import BlockInfo, inferred_args, lookup
from engine.compiler.expr import ExprError, Poisoned, evaluate
from engine.compiler.ir import (
    INVALID,
    Deferred,
    Diagnostic,
    Graph,
    Node,
    NodeShapes,
    Ref,
    Shaped,
    Spec,
    TensorInfo,
)
from engine.compiler.walk import iter_nodes

DEFAULT_DIMS = {"B": 1}



def infer_shapes(spec: Spec, dims: dict | None = None) -> tuple[Shaped, list[Diagnostic]]:
    run = _ShapeRun(spec, {**DEFAULT_DIMS, **(spec.doc.get("dims") or {}), **(dims or {})})
    shaped = Shaped(spec, run.results, {})
    for name, graph in spec.networks.items():
        env_inputs = run.graph_inputs(graph)
        shaped.inputs[name] = env_inputs
        if len(env_inputs) == len(graph.inputs):
            run.graph(graph, {k: ((v,), ("out",)) for k, v in env_inputs.items()})
            run.check_ties(graph, f"{name}." if spec.multi else "")
    return shaped, run.errors


class _ShapeRun:
    def __init__(self, spec: Spec, dims: dict):
        self.spec, self.dims = spec, dims
        self.results: dict[str, NodeShapes] = {}
        self.errors: list[Diagnostic] = []
        self.memo: dict[tuple, tuple[tuple[TensorInfo, ...], int]] = {}  # repeated layers run once
        self.layers: dict[tuple, nn.Module | Exception] = {}  # and are constructed once

    def error(self, node: Node, message: str, hint: str = "") -> None:
        self.errors.append(Diagnostic(message, node.loc, node.path, hint))

    def graph_inputs(self, graph: Graph) -> dict[str, TensorInfo]:
        out = {}
        self.input_names = getattr(self, "input_names", set()) | set(graph.inputs)
        for name, dims in graph.inputs.items():
            dtype = dims.get("dtype", "float32") if isinstance(dims, dict) else "float32"
            declared = dims.get("channels_first") if isinstance(dims, dict) else None
            dims = dims.get("shape") if isinstance(dims, dict) else dims
            if not isinstance(getattr(torch, dtype, None), torch.dtype):
                self.errors.append(Diagnostic(f"input '{name}' has unknown dtype '{dtype}'",
                                              graph.input_locs.get(name, graph.loc), "",
                                              "use float32, long, bool ..."))
                continue
            sizes = [self.dims.get(d) if isinstance(d, str) else d for d in dims or []]
            if any(not isinstance(s, int) or s < 0 for s in sizes) or not dims:
                unbound = [d for d in dims or [] if isinstance(d, str) and d not in self.dims]
                hint = (f"give {', '.join(unbound)} a size: dims: {{{unbound[0]}: 32}} or "
                        f"--set dims.{unbound[0]}=32") if unbound else "use sizes >= 0"
                self.errors.append(Diagnostic(f"input '{name}' has no concrete shape: {dims}",
                                              graph.input_locs.get(name, graph.loc), "", hint))
                continue
            # a rank-4 input is taken for an image ([B, C, H, W]) unless it says otherwise
            first = len(sizes) == 4 if declared is None else bool(declared) and len(sizes) == 4
            out[name] = TensorInfo(tuple(sizes), first, dtype)
        return out

    def graph(self, graph: Graph, env: dict) -> tuple[tuple[TensorInfo, ...], tuple[str, ...]] | None:
        """Infer a graph's nodes in order; env maps names to (infos, output names)."""
        env = dict(env)
        for node in graph.nodes:
            inputs = [self.lookup(env, ref, node) for ref in node.inputs]
            if any(i is None for i in inputs):
                continue  # an upstream error was already reported
            result = self.node(node, inputs)
            if result is not None:
                self.results[node.path] = result
                env[node.name] = (result.outputs, result.output_names)
        outs = [self.lookup(env, ref, None) for ref in graph.outputs.values()]
        if any(o is None for o in outs):
            return None
        return tuple(outs), tuple(graph.outputs)

    def check_ties(self, graph: Graph, prefix: str) -> None:
        """`tie: {weight: embed.weight}`: the target exists and has the same shape."""
        for node in iter_nodes(graph):
            mine = self.results.get(node.path)
            for pname, target in node.tie.items():
                owner, _, tname = str(target).rpartition(".")
                other = self.results.get(prefix + owner)
                theirs = getattr(other.layer, tname, None) if other and other.layer else None
                own = getattr(mine.layer, pname, None) if mine and mine.layer else None
                if not isinstance(theirs, nn.Parameter) or not isinstance(own, nn.Parameter):
                    self.error(node, f"cannot tie '{pname}' to '{target}': no such parameter",
                               "write tie: {weight: <node path>.weight}, a path from the network root")
                elif theirs.shape != own.shape:
                    self.error(node, f"cannot tie '{pname}' {list(own.shape)} to '{target}' "
                                     f"{list(theirs.shape)}: shapes differ")

    def lookup(self, env: dict, ref: Ref, node: Node | None) -> TensorInfo | None:
        if ref.node not in env:
            return None  # unknown names are reported by validate; failed nodes by their own error
        infos, names = env[ref.node]
        if ref.output is None:
            return infos[0]
        if ref.output in names:  # by name first: a recursion's applications are named 0, 1, ...
            return infos[names.index(ref.output)]
        if ref.output.isdigit() and int(ref.output) < len(infos):
            return infos[int(ref.output)]
        if ref.output not in names:
            if node is not None:
                self.error(node, f"'{ref.node}' has no output '{ref.output}'",
                           f"its outputs are: {', '.join(names)}")
            return None
        return infos[names.index(ref.output)]

    def node(self, node: Node, inputs: list[TensorInfo]) -> NodeShapes | None:
        if isinstance(node.when, Deferred):
            try:
                node.when = bool(_concrete(node.when, inputs))
            except Poisoned:
                node.when = True  # its error is already reported
            except ExprError as err:
                self.error(node, f"in `when:`: {err}", err.hint)
                return None
            if not node.when:  # switched off by the upstream shape: pass `otherwise:` through
                node.kind, node.op, node.body = "pass", "pass", None
                node.inputs = node.inputs[node.passes:node.passes + 1]
                inputs = inputs[node.passes:node.passes + 1]
        if node.kind == "pass":
            return NodeShapes(inputs, (inputs[0],), ("out",)) if inputs else None
        if node.kind == "graph":
            return self.subgraph(node, inputs)
        if node.kind in ("prim", "param"):
            return self.primitive(node, inputs)
        return None

    def subgraph(self, node: Node, inputs: list[TensorInfo]) -> NodeShapes | None:
        body = node.shared.body if node.shared is not None else node.body
        if len(inputs) != len(body.inputs):
            self.error(node, f"'{node.op}' takes {len(body.inputs)} input(s) "
                             f"({', '.join(body.inputs)}), got {len(inputs)}",
                       "list them in `in:`")
            return None
        env = {name: ((info,), ("out",)) for name, info in zip(body.inputs, inputs)}
        result = self.graph(body, env)
        if result is None:
            return None
        macs = sum(self.results[n.path].macs for n in body.nodes if n.path in self.results)
        return NodeShapes(inputs, result[0], result[1], macs=macs)

    def primitive(self, node: Node, inputs: list[TensorInfo]) -> NodeShapes | None:
        info = lookup(node.op)
        args = self.evaluate_args(node.shared or node, inputs)
        if info is None or args is None or not self.check_inputs(node, info, inputs):
            return None
        target = self.results.get(node.shared.path) if node.shared else None
        if node.shared and target is None:
            return None  # the shared node's own error is reported
        full = {**args, **inferred_args(info, [i.shape for i in inputs])}
        layer = target.layer if target else self.layer(node, full)
        if layer is None:
            return None
        ran = self.run(node, layer, inputs, info, args)
        if ran is None:
            return None
        outputs, macs = ran
        # a block may return fewer outputs than it declares (`recurrent` over a GRU cell has
        # no `c`): the first ones keep their names
        names = info.outputs[:len(outputs)] if len(info.outputs) >= len(outputs) else \
            tuple(str(k) for k in range(len(outputs)))
        # build's own module: the shared node's very one, or a fresh one like `layer`
        make = (lambda: target.module) if target else functools.partial(_construct, info.cls, full)
        return NodeShapes(inputs, outputs, names, layer, args, macs, make=make)

    def evaluate_args(self, node: Node, inputs: list[TensorInfo]) -> dict | None:
        try:
            args = {k: _concrete(v, inputs) for k, v in node.args.items()}
        except Poisoned:
            return None  # built from a value whose error is already reported
        except ExprError as err:
            self.error(node, str(err), err.hint)
            return None
        return None if any(v is INVALID for v in args.values()) else args

    def check_inputs(self, node: Node, info: BlockInfo, inputs: list[TensorInfo]) -> bool:
        if info.in_dim is None or not inputs:
            return True
        x = inputs[0]
        # the input has dim `in_dim` besides the batch: [B, D] is enough for in_dim 1 (batchnorm1d)
        if x.rank < (abs(info.in_dim) if info.in_dim < 0 else info.in_dim) + 1:
            self.error(node, f"'{node.op}' needs a batched input with a size at dim "
                             f"{info.in_dim}, got shape {list(x.shape)}",
                       "reshape or flatten the input first")
            return False
        if info.in_dim == -1 and x.channels_first and x.rank > 2:
            source = node.inputs[0].node if node.inputs else ""
            graph_input = source in getattr(self, "input_names", ()) and "." not in node.path
            self.error(node, f"'{node.op}' acts on the last dim, but its input {list(x.shape)} "
                             "is taken for a channels-first feature map [B, C, H, W] ("
                             + ("a rank-4 input of the spec" if graph_input else
                                "the output of a conv, pool or other image layer") + ")",
                       f"if its last dim is the features ([B, windows, tokens, C]), declare it "
                       f"{source}: {{shape: [...], channels_first: false}}" if graph_input else
                       "add {op: flatten, start: 2} and {op: permute, dims: [0, 2, 1]} before it "
                       "for tokens, or {op: permute, dims: [0, 2, 3, 1]} for channels last")
            return False
        return True

    def layer(self, node: Node, args: dict) -> nn.Module | None:
        """The meta module of `node.op` with `args` (`in_size` filled in), one per distinct
        pair: the nodes that have them share it for their shapes (their own is made at build)."""
        key = (node.op, repr(sorted(args.items())))
        if key not in self.layers:
            try:
                self.layers[key] = _construct(lookup(node.op).cls, args)
            except Exception as err:  # a PyTorch constructor refusing these arguments
                self.layers[key] = err
        layer = self.layers[key]
        if isinstance(layer, Exception):
            self.error(node, f"cannot construct '{node.op}' with {_fmt_args(args)}: "
                             f"{_first_line(layer)}", "check the argument values")
            return None
        return layer

    def run(self, node: Node, module: nn.Module, inputs: list[TensorInfo], info: BlockInfo,
            args: dict) -> tuple[tuple[TensorInfo, ...], int] | None:
        """Output shapes and MACs of one node (element-wise blocks need no run: 0 MACs)."""
        if info.same_shape:
            return (inputs[0],), 0
        # the same op, arguments and input shapes give the same output shapes
        key = (node.op, repr(sorted(args.items())),
               tuple((i.shape, i.dtype, i.channels_first) for i in inputs))
        if key not in self.memo:
            outputs = by_rule(info, args, inputs) or self.run_meta(node, module, inputs, info)
            if outputs is None:
                return None
            self.memo[key] = outputs
        return self.memo[key]

    def run_meta(self, node: Node, module: nn.Module, inputs: list[TensorInfo],
                 info: BlockInfo) -> tuple[tuple[TensorInfo, ...], int] | None:
        tensors = [torch.empty(i.shape, dtype=getattr(torch, i.dtype), device="meta")
                   for i in inputs]
        try:
            # MACs as torchvision publishes them: PyTorch's FLOP formulas count the
            # matrix products (conv, linear, matmul, attention), 2 FLOPs per MAC.
            with MacCounter() as counter:
                out = module(*tensors)
        except Exception as err:  # PyTorch's complaint, re-reported against the spec node
            self.error(node, _shape_message(node, inputs, err), _shape_hint(node.op))
            return None
        outs = out if isinstance(out, tuple) else (out,)
        layout = info.layout if info.layout is not None else bool(inputs and
                                                                  inputs[0].channels_first)
        infos = tuple(TensorInfo(tuple(o.shape), layout and o.dim() == 4,
                                 str(o.dtype).removeprefix("torch.")) for o in outs)
        return infos, counter.flops // 2


def by_rule(info: BlockInfo, args: dict, inputs: list[TensorInfo]
            ) -> tuple[tuple[TensorInfo, ...], int] | None:
    """Output shapes and MACs from the block's `shape_rule` (blocks/shape_rules.py), or None
    where it has none or declines: then PyTorch runs it on meta and says what is wrong."""
    rule = getattr(info.cls, "shape_rule", None)
    if rule is None or not inputs or any(i.dtype != "float32" for i in inputs):
        return None
    shapes = [i.shape for i in inputs]
    ruled = rule({**args, **inferred_args(info, shapes)}, shapes)
    if ruled is None:
        return None
    outs, macs = ruled
    layout = info.layout if info.layout is not None else inputs[0].channels_first
    return tuple(TensorInfo(tuple(o), layout and len(o) == 4, "float32") for o in outs), macs


# `torch.nn.init`'s in-place schemes: on meta tensors they compute nothing, but their Python
# (fans, gains, bounds) was a third of constructing a layer; build initialises every module again.
_INIT_SCHEMES = tuple(name for name in dir(nn.init)
                      if name.endswith("_") and not name.startswith("_")
                      and callable(getattr(nn.init, name)))
_SKIPPING = threading.local()  # per thread: how many skip_init blocks are open


def _skippable(scheme):
    """`scheme`, left out (the tensor returned untouched) in a thread inside skip_init."""
    @functools.wraps(scheme)
    def wrapper(tensor, *args, **kwargs):
        if getattr(_SKIPPING, "depth", 0):
            return tensor
        return scheme(tensor, *args, **kwargs)
    return wrapper


# Wrapped once, here, rather than swapped in and out by skip_init: a swap is global, so while one
# thread (the viewer's server, a user's pool) analysed a spec, another thread's build ran without
# its initialisation, and two overlapping swaps could leave the no-op in place for good.
for _name in _INIT_SCHEMES:
    setattr(nn.init, _name, _skippable(getattr(nn.init, _name)))


@contextlib.contextmanager
def skip_init():
    """Within, in this thread: `nn.init.kaiming_uniform_(w)` and the other schemes return `w`
    untouched; other threads initialise as usual.

    Only for modules on the meta device, whose values do not exist: build.py materialises them
    with `to_empty` and calls every `reset_parameters` (compiler/init.py), which reads the real
    schemes again. Meta tensors draw no random numbers, so the built weights stay the same.
    """
    _SKIPPING.depth = getattr(_SKIPPING, "depth", 0) + 1
    try:
        yield
    finally:
        _SKIPPING.depth -= 1


# Queries of a tensor's metadata: FlopCounterMode leaves them to PyTorch's default handling.
_METADATA_OPS = ("sym_is_contiguous.default", "is_contiguous.default",
                 "is_contiguous.memory_format", "is_strides_like_format.default",
                 "is_non_overlapping_and_dense.default", "size.default", "sym_size.default",
                 "stride.default", "sym_stride.default", "storage_offset.default",
                 "sym_storage_offset.default", "numel.default", "sym_numel.default", "dim.default")


class MacCounter(TorchDispatchMode):
    """FLOPs of the ops run inside, by PyTorch's own formulas: what `FlopCounterMode` counts.

    Without FlopCounterMode's per-module tracking (hooks on every call; the total is all that
    is read), and without the `torch._dynamo` import (seconds) that TorchDispatchMode's default
    wrapper makes on the first op: nothing run here is ever compiled.
    """

    def __init__(self):
        super().__init__()
        self.flops = 0

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # keep __torch_dispatch__ unwrapped (the wrapper imports torch._dynamo)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _metadata_ops() or isinstance(func, torch._ops.HigherOrderOperator):
            return NotImplemented
        # as FlopCounterMode: an op without a formula is decomposed into ones that may have one
        if func not in flop_registry and func is not torch.ops.prim.device.default:
            with self:
                out = func.decompose(*args, **kwargs)
                if out is not NotImplemented:
                    return out
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


@functools.cache
def _metadata_ops() -> frozenset:
    ops = [getattr(getattr(torch.ops.aten, op), overload)
           for op, overload in (name.split(".") for name in _METADATA_OPS)]
    return frozenset([*ops, torch.ops.prim.layout.default])


def _construct(cls: type, args: dict) -> nn.Module:
    with torch.device("meta"), skip_init():
        return cls(**args)


def _concrete(value, inputs: list[TensorInfo]):
    if isinstance(value, Deferred):
        # `input`: the node's first input; `inputs[k]`: its k-th, in the order of its `in:`
        scope = {**value.scope, "input": inputs[0] if inputs else None, "inputs": list(inputs)}
        return evaluate(value.source, scope)
    if isinstance(value, list):
        return [_concrete(v, inputs) for v in value]
    return value


def _shape_message(node: Node, inputs: list[TensorInfo], err: Exception) -> str:
    shapes = ", ".join(f"{ref} {list(i.shape)}" for ref, i in zip(node.inputs, inputs))
    if len(inputs) > 1:  # a merge: the shapes say it all, PyTorch's wording adds nothing
        return f"shape mismatch in '{node.op}': inputs {shapes}"
    return f"shape error in '{node.op}' with input {shapes}: {_first_line(err)}"


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _fmt_args(args: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in args.items()) + "}"


def _shape_hint(op: str) -> str:
    if op in ("add", "mul"):
        return "the inputs must have equal (or broadcastable) shapes; is a projection missing?"
    if op == "concat":
        return "all dims except the concatenated one must match"
    return "check this node's arguments against the shape of its input"
