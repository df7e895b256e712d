"""File assembly: the header, imports, class texts, `build()` and the `__main__` block."""

from __future__ import annotations

import ast
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from engine.compiler.ir import Shaped
from engine.views.codegen.classes import _EPILOGUE, _LOOP_VAR, _Classes, _Group, _Inst, _set_heights
from engine.views.codegen.layers import _Layers
from engine.views.codegen.literals import _MISSING, _REQ, _STANDARD_IMPORTS, _camel, _lit, _same
from engine.views.codegen.sources import _Sources


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


class _Codegen(_Classes, _Layers, _Sources):
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
        from engine.compiler.merge import SPECS_DIR
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
            from engine.compiler.merge import load_merged
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
