"""File assembly: the classes of a spec in dependency order, with the header, the imports,
`build()` and the `__main__` block around them."""

from __future__ import annotations

import ast
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from engine.compiler.ir import Shaped, Spec
from engine.views.codegen.bodies import BodyWriter
from engine.views.codegen.classes import ClassTable, finalize, name_classes
from engine.views.codegen.ir import Group, Inst
from engine.views.codegen.layers import Layers
from engine.views.codegen.literals import (
    STANDARD_IMPORTS,
    comment_text,
    docstring_text,
    literal,
    same,
    variable,
)
from engine.views.codegen.sources import Helpers
from engine.views.codegen.tree import Tree, collect
from engine.views.codegen.write import class_text


def codegen_source(shaped: Shaped, output: str | Path | None = None) -> str:
    """The standalone PyTorch source of a shaped spec (what `engine.analyze` returns);
    `output` is the file name the header's regenerate command writes to."""
    helpers = Helpers()
    tree = collect(shaped.spec)
    groups = _classes(shaped, tree, helpers)
    name_classes(groups, tree.tops, set(helpers.sources))
    source = _assemble(shaped, tree.tops, groups, helpers,
                       str(output) if output is not None else "model.py")
    _check_parses(source)
    return source


def _check_parses(source: str) -> None:
    """The file must be the Python we meant to write: spec text reaches it only through
    literals, comments and docstrings, escaped; anything else is a bug of codegen's own."""
    try:
        ast.parse(source)
    except SyntaxError as err:
        raise RuntimeError(f"codegen wrote invalid Python (line {err.lineno}: {err.msg}); "
                           "the file was not written") from None


def write_codegen(shaped: Shaped, output: str | Path) -> Path:
    """Write `codegen_source` to `output` (parent folders are created); return its path."""
    path = Path(output)
    text = codegen_source(shaped, output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _classes(shaped: Shaped, tree: Tree, helpers: Helpers) -> list[Group]:
    """Every instance's class body, grouped into classes, children before parents: a class's
    parameters must be known before the bodies that call it are written."""
    table = ClassTable()
    writer = BodyWriter(shaped, tree, Layers(shaped, helpers))
    for level in tree.levels():
        fresh: list[Group] = []
        for inst in level:
            group = table.add(inst, writer.body(inst))
            if group not in fresh:
                fresh.append(group)
        for group in fresh:
            finalize(group, shaped.spec)
    return table.groups


def _assemble(shaped: Shaped, tops: list[Inst], groups: list[Group], helpers: Helpers,
              output: str) -> str:
    """Helpers, block classes (leaves first, in model order), networks, `build()`, main."""
    blocks = sorted((g for g in groups if g.insts[0].node is not None),
                    key=lambda g: (g.insts[0].height, min(i.order for i in g.insts)))
    parts = [text.rstrip("\n") for text in helpers.sources.values()]
    parts += [class_text(g, groups, shaped).rstrip("\n")
              for g in [*blocks, *(t.group for t in tops)]]
    parts.append(_build_function(shaped.spec, tops))
    body = "\n\n\n".join(parts) + "\n\n\n" + _main_block(shaped, tops)
    return (_header(shaped.spec, output) + "\n" + _imports(body, helpers.imports) + "\n\n\n"
            + body)


def _build_function(spec: Spec, tops: list[Inst]) -> str:
    if not spec.multi:
        return (f"def build() -> nn.Module:\n"
                f"    \"\"\"A freshly initialised {docstring_text(spec.name)}.\"\"\"\n"
                f"    return {tops[0].group.name}()")
    nets = ", ".join(f"{literal(t.network)}: {t.group.name}()" for t in tops)
    return ("def build() -> nn.ModuleDict:\n"
            f"    \"\"\"The networks of {docstring_text(spec.name)}, freshly initialised.\"\"\"\n"
            f"    return nn.ModuleDict({{{nets}}})")


def _main_block(shaped: Shaped, tops: list[Inst]) -> str:
    """Run each network once on example inputs and print its output shapes."""
    lines = ['if __name__ == "__main__":', "    model = build().eval()",
             "    with torch.no_grad():"]
    for top in tops:
        lines += _run_network(shaped, top)
    return "\n".join(lines) + "\n"


def _run_network(shaped: Shaped, top: Inst) -> list[str]:
    multi = shaped.spec.multi
    inputs = shaped.inputs.get(top.network, {})
    lines = [f"        {variable(name)} = {_example(info)}" for name, info in inputs.items()]
    target = f"model[{literal(top.network)}]" if multi else "model"
    lines.append(f"        out = {target}({', '.join(variable(name) for name in inputs)})")
    label = f"{top.network}: " if multi else ""
    if len(top.graph.outputs) > 1:
        shapes = "{k: tuple(v.shape) for k, v in out.items()}"
        lines.append(f"        print({literal(label)}, {shapes})" if label
                     else f"        print({shapes})")
        return lines
    (output, ref), = top.graph.outputs.items()
    source = shaped.nodes.get(f"{top.path}.{ref.node}" if top.path else ref.node)
    several = ref.output is None and source is not None and len(source.outputs) > 1
    shape = "[tuple(t.shape) for t in out]" if several else "tuple(out.shape)"
    lines.append(f"        print({literal(label + output)}, {shape})")
    return lines


def _header(spec: Spec, output: str) -> str:
    """Where the file comes from and how to regenerate it, then the spec's own comment."""
    from engine.compiler.merge import SPECS_DIR
    path = Path(spec.file)
    bundled = path.resolve().parent == SPECS_DIR.resolve()
    where = f"specs/{path.name}" if bundled else str(path)
    command = f"engine codegen {path.stem if bundled else path}{_sets(spec)} -o {output}"
    lines = [f"# Generated by `engine codegen` from {comment_text(where)} "
             f"(spec `{comment_text(spec.name)}`).",
             "# Do not edit; regenerate with:", f"#     {comment_text(command)}"]
    params = ", ".join(f"{k}={literal(v)}" for k, v in (spec.params or {}).items())
    if params:
        lines += textwrap.wrap(f"params: {params}", 96, initial_indent="# ",
                               subsequent_indent="#     ", break_on_hyphens=False)
    lines += ["# Standalone: imports only torch, torchvision and the standard library.",
              "# Module names match the engine's: the state_dict of a model built with",
              "# `engine.build` loads into this one with strict=True."]
    doc = docstring_text(_spec_comment(path) or f"The {spec.name} model.")
    return "\n".join(lines) + f'\n"""{doc}\n"""\n'


def _sets(spec: Spec) -> str:
    """`--set` arguments for the params that differ from the spec file's own values."""
    try:
        from engine.compiler.merge import load_merged
        raw = load_merged(Path(spec.file)).get("params") or {}
    except Exception:  # only a comment depends on it: never fail the generation over it
        return ""
    out = []
    for key, value in (spec.params or {}).items():
        if isinstance(raw.get(key), str) and "$" in raw[key]:
            continue  # an expression of other params: follows from them
        if key not in raw or not same(_plain(raw[key]), _plain(value)):
            out.append(_set_argument(key, value))
    return "".join(out)


def _set_argument(key: str, value: Any) -> str:
    """` --set key=value`, quoted for the shell unless plain."""
    text = value if isinstance(value, str) else json.dumps(_plain(value), separators=(",", ":"))
    plain = text.replace("_", "").replace(".", "").replace("-", "").isalnum()
    return f" --set {key}={text}" if plain else f" --set '{key}={text}'"


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
    """The import block, as isort writes it: standard names the body uses, plus what copied
    blocks import."""
    used = {n.id for n in ast.walk(ast.parse(body)) if isinstance(n, ast.Name)}
    lines = {STANDARD_IMPORTS[n] for n in used if n in STANDARD_IMPORTS} | extra
    lines |= {"import torch", "from torch import nn"}
    ordered = sorted(_merge_from_imports(lines),
                     key=lambda s: (_section(s), s.startswith("from "), s.split()[1], s))
    out = ["from __future__ import annotations", ""]
    for i, line in enumerate(ordered):
        if i and _section(line) != _section(ordered[i - 1]):
            out.append("")
        out.append(line)
    return "\n".join(out)


def _merge_from_imports(lines: set[str]) -> set[str]:
    """`from m import a` and `from m import b` as `from m import a, b` (aliased ones apart)."""
    merged: dict[str, set[str]] = {}
    rest = set(lines)
    for line in [x for x in lines if x.startswith("from ") and " as " not in x]:
        module, names = line[5:].split(" import ")
        merged.setdefault(module, set()).update(n.strip() for n in names.split(","))
        rest.discard(line)
    return rest | {f"from {m} import {', '.join(sorted(n, key=_isort_key))}"
                   for m, n in merged.items()}


def _section(line: str) -> int:
    """isort's sections: the standard library, then third-party."""
    return 0 if line.split()[1].split(".")[0] in sys.stdlib_module_names else 1
