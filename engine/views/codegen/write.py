"""A generated class as text: its tokens written with each hole's final text (a literal, a
parameter or an expression), its __init__ signature, and a docstring saying where it is used."""

from __future__ import annotations

from engine.compiler.ir import Shaped
from engine.views.codegen.ir import (
    LOOP_VAR,
    REQUIRED,
    SECTIONS,
    Call,
    Cat,
    ClassRef,
    Group,
    Lit,
    Loop,
    Pos,
    Seq,
    Text,
    Token,
)
from engine.views.codegen.literals import docstring_text, literal


def class_text(g: Group, groups: list[Group], shaped: Shaped) -> str:
    """The class of `g`, named; `groups` are the file's classes, by `gid`."""
    body = ["super().__init__()", *(_write(line, g, groups, 8) for line in g.lines)]
    for section, comment in SECTIONS.items():
        toks = [s.tok for s in g.inits if s.section == section]
        if toks:
            body += ["", comment, *(_write(tok, g, groups, 8) for tok in toks)]
    init = "\n".join(f"        {s}" if s else "" for s in body)
    return (f"class {g.name}(nn.Module):\n    \"\"\"{docstring_text(_label(g, shaped))}\"\"\"\n\n"
            f"{_init_header(g)}\n{init}\n\n{g.forward}")


def _init_header(g: Group) -> str:
    """`def __init__(self, ...):`, one parameter a line where it would be too long."""
    sig = ["self"] + [p.name if p.default is REQUIRED else f"{p.name}={literal(p.default)}"
                      for p in g.signature()]
    header = f"    def __init__({', '.join(sig)}):"
    if len(header) > 100:
        header = "    def __init__(\n" + "".join(f"        {s},\n" for s in sig) + "    ):"
    return header


def _label(g: Group, shaped: Shaped) -> str:
    """The docstring: the network and its inputs, or the block and where it is used."""
    first, spec = g.insts[0], shaped.spec
    if first.node is None:
        shapes = shaped.inputs.get(first.network, {})
        ins = ", ".join(f"{n} {list(i.shape)}" for n, i in shapes.items())
        what = (f"network `{first.network}` of {spec.name}" if spec.multi
                else f"`{spec.name}` model")
        return f"The {what}: {ins} -> {', '.join(first.graph.outputs)}."
    node = first.node
    what = f"`{node.op}` block" if first.block_args is not None else f"`{node.name}` graph"
    paths = [i.path for i in g.insts]
    where = ", ".join(paths) if len(paths) <= 2 else f"{paths[0]} and {len(paths) - 1} more"
    text = f"The spec's {what}, at {where}."
    return text if len(text) <= 88 else f"The spec's {what} ({len(paths)} in the model)."


def _write(tok: Token, g: Group, groups: list[Group], indent: int) -> str:
    """A token as text; `indent` is the column of the line the text starts on."""
    match tok:
        case Text(text):
            return text
        case Lit(hole):
            return g.text[hole]
        case Cat(parts):
            return "".join(_write(t, g, groups, indent) for t in parts)
        case ClassRef(gid):
            return groups[gid].name
        case Call():
            return _call(tok, g, groups, indent)
        case Loop():
            return _loop(tok, g, groups, indent)
        case Seq():
            return _sequential(tok, g, groups, indent)
    raise ValueError(f"unknown token {tok!r}")


def _call(tok: Call, g: Group, groups: list[Group], indent: int) -> str:
    """`callee(args)`, keyword arguments at their default in every instance left out."""
    parts = [_write(arg.tok, g, groups, indent) if isinstance(arg, Pos)
             else f"{arg.name}={g.text[arg.hole]}"
             for arg in tok.args if isinstance(arg, Pos) or arg.hole not in g.omitted]
    callee = _write(tok.callee, g, groups, indent)
    one = f"{callee}({', '.join(parts)})"
    if "\n" in one or indent + len(one) <= 86:  # room for `self.add_module("name", ` before it
        return one
    pad = " " * (indent + 4)  # too long for one line: one argument a line
    return f"{callee}(\n" + "".join(f"{pad}{part},\n" for part in parts) + " " * indent + ")"


def _loop(tok: Loop, g: Group, groups: list[Group], indent: int) -> str:
    # the loop variable must not shadow a constructor parameter the body reads
    v = next(n for n in ("layer", "module", "child", "m") if n not in {p.name for p in g.params})
    pad = " " * (indent + 8)
    lines = [f"for {v} in {tok.seq}:", " " * (indent + 4) + f"if isinstance({v}, {tok.cls}):"]
    lines += [pad + _write(t, g, groups, indent + 8).replace(LOOP_VAR, v) for t in tok.body]
    return "\n".join(lines)


def _sequential(tok: Seq, g: Group, groups: list[Group], indent: int) -> str:
    """An nn.Sequential on one line where it fits in 80 columns, else one layer a line."""
    inner = [(name, _write(t, g, groups, indent + 4)) for name, t in tok.items]
    if tok.positional:
        entries = [text for _, text in inner]
        head, tail = "nn.Sequential(", ")"
    else:
        entries = [f"({literal(name)}, {text})" for name, text in inner]
        head, tail = "nn.Sequential(OrderedDict([", "]))"
    one = head + ", ".join(entries) + tail
    if "\n" not in one and indent + len(one) <= 80:
        return one
    pad = " " * (indent + 4)
    return head + "\n" + "".join(f"{pad}{e},\n" for e in entries) + " " * indent + tail
