"""Stage 5, build: turn the shaped graph into plain PyTorch modules.

Every graph (a network, a spec block instance, a `seq`/`repeat`) becomes an `nn.Module`
whose `forward` is generated Python source, one line per node, compiled once per distinct
source and shared by all instances (all sixteen ResNet-50 bottlenecks share two classes).
The primitive modules are the very meta modules the shape stage made; they are materialised
with `to_empty` and initialised once, so no default initialisation is wasted. The forward
drops each intermediate after its last read, and an add overwrites an operand nothing else reads
(engine/compiler/liveness.py), as torchvision's hand-written forwards do.
"""

from __future__ import annotations

import hashlib
import keyword
import linecache
from collections.abc import Iterable

import torch
from torch import nn

from engine.compiler.init import apply_rule, initialize
from engine.compiler.ir import Diagnostic, Graph, Node, Ref, Shaped, SpecError
from engine.compiler.limits import limit
from engine.compiler.liveness import Step, frees, inplace_expression, inplace_operands, with_frees
from engine.compiler.names import NAME
from engine.compiler.walk import all_nodes, iter_nodes

_CLASSES: dict[tuple[str, str], type] = {}


class GeneratedModule(nn.Module):
    """Base of generated graph modules. `forward` is generated; print it with `.code`."""

    code: str = ""

    def __init__(self):
        super().__init__()
        self.param_inits: dict[str, object] = {}  # learned tensors on this module -> init rule
        self.buffer_values: dict[str, tuple] = {}  # `buffer` nodes -> (value, dtype name)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for name, rule in self.param_inits.items():
                apply_rule(getattr(self, name), rule)
            for name, (value, dtype) in self.buffer_values.items():
                buffer = getattr(self, name)
                if buffer.device.type != "meta":
                    buffer.copy_(torch.tensor(value, dtype=getattr(torch, dtype)))


def build(shaped: Shaped, device: str = "cpu") -> nn.Module:
    """Materialise the networks of a shaped spec (a ModuleDict for multi-network specs)."""
    spec = shaped.spec
    errors = check_size(shaped)
    if errors:
        raise SpecError(errors)
    nets = {name: _graph_module(g, shaped, _class_name(name), top=True)
            for name, g in spec.networks.items()}
    root = nn.ModuleDict(nets) if spec.multi else next(iter(nets.values()))
    root.to_empty(device=device)
    initialize(root, shaped)
    for name, graph in spec.networks.items():
        prefix = f"{name}." if spec.multi else ""
        _apply_spectral_norm(nets[name], graph, prefix)
        _apply_ties(nets[name], graph, prefix)
        _apply_freeze(nets[name], graph, prefix)
    return root


def check_size(shaped: Shaped) -> list[Diagnostic]:
    """Before allocating anything: the parameters and the activation memory of one sample, from
    the shape stage's meta modules and shapes, within their limits (engine/compiler/limits.py).
    Each error points at the node that asks for the most."""
    activations = [pair for graph in shaped.spec.networks.values()
                   for pair in _activations(graph, shaped)]
    found = (_over("params", list(_parameters(shaped))), _over("activation_bytes", activations))
    return [d for d in found if d is not None]


def _parameters(shaped: Shaped):
    """(parameters a node allocates, node), each shared tensor counted once."""
    seen: set[int] = set()
    for node in all_nodes(shaped.spec):
        result = shaped.nodes.get(node.path)
        if result is None or result.module is None or node.shared is not None:
            continue
        fresh = [p for p in result.module.parameters() if id(p) not in seen]
        seen.update(id(p) for p in fresh)
        yield sum(p.numel() for p in fresh), node


def _over(name: str, sizes: list[tuple[int, Node]]) -> Diagnostic | None:
    """The limit `name` checked against the total of `sizes`, located at the largest one."""
    node = max(sizes, key=lambda pair: pair[0])[1] if sizes else None
    return limit(name).check(sum(size for size, _ in sizes), node.loc if node else None,
                             node.path if node else "")


def _activations(graph: Graph, shaped: Shaped):
    """(bytes of one sample's outputs, node) for each primitive node run by a graph."""
    for node in graph.nodes:
        result = shaped.nodes.get(node.path)
        if result is None or node.kind in ("pass", "param"):
            continue
        if node.kind == "graph":
            body = node.shared.body if node.shared is not None else node.body
            if body is not None:
                yield from _activations(body, shaped)
            continue
        size = 0
        for out in result.outputs:
            itemsize = getattr(torch, out.dtype).itemsize
            numel = 1
            for d in out.shape:
                numel *= d
            size += itemsize * numel // max(out.shape[0], 1) if out.shape else itemsize
        yield size, node


def _apply_spectral_norm(net: nn.Module, graph: Graph, prefix: str) -> None:
    """`spectral_norm: true`: after initialisation, so the power iteration starts from the
    initialised weight (the state_dict then holds `parametrizations.weight.original`, `_u`, `_v`,
    as torch's own spectral_norm writes them)."""
    for node in iter_nodes(graph):
        if node.spectral_norm and node.shared is None:
            module = net.get_submodule(node.path[len(prefix):])
            nn.utils.parametrizations.spectral_norm(module)


def _apply_freeze(net: nn.Module, graph: Graph, prefix: str) -> None:
    for node in iter_nodes(graph):
        if node.freeze:
            path = node.path[len(prefix):]
            if node.kind == "param":  # a learned tensor, or a buffer (never trained anyway)
                owner, _, name = path.rpartition(".")
                tensor = getattr(net.get_submodule(owner), name)
                params = [tensor] if isinstance(tensor, nn.Parameter) else []
            else:
                params = net.get_submodule(path).parameters()
            for p in params:
                p.requires_grad_(False)


def _apply_ties(net: nn.Module, graph: Graph, prefix: str) -> None:
    """Point tied parameters at their target (one tensor, two names in the state_dict)."""
    for node in iter_nodes(graph):
        for pname, target in node.tie.items():
            module = net.get_submodule(node.path[len(prefix):])
            setattr(module, pname, net.get_parameter(target))


def _graph_module(graph: Graph, shaped: Shaped, class_name: str, top: bool = False) -> nn.Module:
    lines = []
    children: dict[str, nn.Module] = {}
    params: dict[str, tuple] = {}  # learned tensors and buffers, by node name
    names = graph_variables(graph)
    inplace = inplace_operands(graph, shaped)
    for node in graph.nodes:
        lines.append(_node_line(node, shaped, children, params, names, inplace.get(node.name)))
    source = _forward_source(graph, lines, top, shaped, names)
    cls = _class_for(class_name, source)
    module = cls()
    for name, child in children.items():
        module.add_module(name, child)
    for name, (tensor, rule) in params.items():
        if isinstance(tensor, nn.Parameter):
            module.register_parameter(name, tensor)
            module.param_inits[name] = rule
        else:  # a `buffer` node: `rule` is its block, which holds the value
            module.register_buffer(name, tensor, persistent=rule.persistent)
            module.buffer_values[name] = (rule.value, rule.dtype)
    return module


def _node_line(node: Node, shaped: Shaped, children: dict, params: dict,
               names: dict[str, str], inplace: int | None = None) -> str:
    """The forward's line for `node` (its module or parameter registered in `children` or
    `params`); `inplace`: the operand it overwrites (liveness.inplace_operands), if any."""
    scope = node.path.rpartition(".")[0]
    out = names[node.name]
    refs = [_ref_expr(r, shaped, scope, names) for r in node.inputs]
    args = ", ".join(refs)
    if node.kind == "pass":
        return f"{out} = {_ref_expr(node.inputs[0], shaped, scope, names)}"
    result = shaped.nodes[node.path]
    if node.kind == "param":
        tensor = result.module.weight
        params[node.name] = (tensor, node.init if node.init != {} else "zeros") if isinstance(
            tensor, nn.Parameter) else (tensor, result.module)
        return f"{out} = {_attr(node.name)}"
    if node.shared is not None:  # the same module object, called again
        return f"{out} = {_attr(node.shared.name)}({args})"
    if node.kind == "graph":
        children[node.name] = _graph_module(node.body, shaped, _class_name(node.op))
    else:
        children[node.name] = result.module
    if inplace is not None:  # the module stays registered (same state_dict), called as a method
        return f"{out} = {inplace_expression(result.module, refs, inplace)}"
    return f"{out} = {_attr(node.name)}({args})"


def _ref_expr(ref: Ref, shaped: Shaped, scope: str, names: dict[str, str]) -> str:
    """A reference as Python: `name`, or `name[k]` to pick output k of a multi-output node."""
    source = shaped.nodes.get(f"{scope}.{ref.node}" if scope else ref.node)
    name = names.get(ref.node) or var(ref.node)
    if source is None or len(source.outputs) == 1:
        return name  # a graph input, or a single-output module's bare tensor
    if ref.output is None:
        return f"{name}[0]"  # a multi-output node used whole means its first output
    outputs = source.output_names
    index = outputs.index(ref.output) if ref.output in outputs else int(ref.output)
    return f"{name}[{index}]"


def _forward_source(graph: Graph, lines: list[str], top: bool, shaped: Shaped,
                    names: dict[str, str]) -> str:
    params = ", ".join(["self", *(names[n] for n in graph.inputs)])
    scope = graph.nodes[0].path.rpartition(".")[0] if graph.nodes else ""
    outs = {name: _ref_expr(ref, shaped, scope, names) for name, ref in graph.outputs.items()}
    returned = {names.get(ref.node) or var(ref.node) for ref in graph.outputs.values()}
    lines = with_frees(lines, frees(_steps(graph, names), returned))
    body = "\n".join(f"    {line}" for line in [*lines, return_statement(outs, top)])
    return f"def forward({params}):\n{body}\n"


def _steps(graph: Graph, names: dict[str, str]) -> list[Step]:
    """The liveness steps of a graph's forward, one per node; a parameter's alias frees nothing
    (the module holds the tensor anyway)."""
    return [Step(None if node.kind == "param" else names[node.name],
                 frozenset(names.get(r.node) or var(r.node) for r in node.inputs))
            for node in graph.nodes]


def return_statement(outs: dict[str, str], top: bool) -> str:
    """One output returns a tensor; several a dict at the top level, a tuple inside blocks."""
    if len(outs) == 1:
        return f"return {next(iter(outs.values()))}"
    if top:
        return "return {" + ", ".join(f"{k!r}: {v}" for k, v in outs.items()) + "}"
    return "return (" + ", ".join(outs.values()) + ")"


def _class_for(name: str, source: str) -> type:
    key = (name, source)
    if key not in _CLASSES:
        digest = hashlib.sha1(source.encode()).hexdigest()[:10]
        filename = f"<engine:{name}:{digest}>"
        # Registered with linecache so tracebacks and debuggers show the generated code.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace: dict = {}
        exec(compile(source, filename, "exec"), namespace)  # our own generated code, not YAML
        _CLASSES[key] = type(name, (GeneratedModule,), {
            "forward": namespace["forward"], "code": source, "__module__": "engine.generated"})
    return _CLASSES[key]


def var(name: str) -> str:
    """The Python variable a node or input name would like ('0' -> '_0', 'in' -> 'in_',
    'block2-0' -> 'block2_0'); `variables` makes a graph's distinct."""
    if not NAME.fullmatch(name):  # names reach generated code: never let anything else in
        raise ValueError(f"unsafe node name {name!r}")
    name = name.replace("-", "_")
    if not name.isidentifier():
        return f"_{name}"
    if keyword.iskeyword(name) or name == "self":
        return f"{name}_"
    return name


def variables(names: Iterable[str], avoid: Iterable[str] = ()) -> dict[str, str]:
    """One distinct Python variable per name of a graph (its inputs and nodes). A name that is a
    plain identifier is its own variable; any other (`0`, `in`, `block2-0`) gets `var(name)`,
    with `_` added while that is taken, so `block2-0` and a node named `block2_0` in one graph
    are `block2_0_` and `block2_0`. `avoid`: names no variable may take (a file's globals)."""
    names = list(dict.fromkeys(names))
    taken = set(avoid)
    out = {n: n for n in names if var(n) == n and n not in taken}
    taken.update(out)
    for n in names:
        if n not in out:
            v = var(n)
            while v in taken:
                v += "_"
            out[n] = v
            taken.add(v)
    return out


def graph_variables(graph: Graph, avoid: Iterable[str] = ()) -> dict[str, str]:
    """`variables` of a graph's inputs and nodes, in that order."""
    return variables([*graph.inputs, *(n.name for n in graph.nodes)], avoid)


def _attr(name: str) -> str:
    """`self.name`, or `getattr(self, 'block2-0')` where the name is no attribute in Python."""
    plain = name.isidentifier() and not keyword.iskeyword(name)
    return f"self.{name}" if plain else f"getattr(self, {name!r})"


def _class_name(op: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in op.replace("-", "_").split("_")) or "Graph"
