"""Stage 1, load: read YAML safely, keeping the line and column of every key and value.

Mappings become `LocDict`s and sequences `LocList`s; both remember where each entry came
from so every later error can point at the source. Two tags exist for `extends`:
`!delete` removes an inherited entry and `!replace {...}` replaces it instead of merging.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from engine.compiler.ir import Diagnostic, Loc, LocDict, LocList, SpecError, located_error


class _Delete:
    """The value of a `!delete` entry: removes the inherited node or key."""

    def __repr__(self) -> str:
        return "!delete"


DELETE = _Delete()


def _loc(file: str, node: yaml.Node) -> Loc:
    return Loc(file, node.start_mark.line + 1, node.start_mark.column + 1)


# libyaml's parser when available (several times faster); the constructors are ours either way
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """SafeLoader that builds LocDict/LocList and records duplicate keys instead of dropping them."""

    def __init__(self, stream, file: str):
        super().__init__(stream)
        self.file = file
        self.problems: list[Diagnostic] = []

    def construct_mapping(self, node, deep=False):
        out = LocDict(loc=_loc(self.file, node))
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in out:
                self.problems.append(Diagnostic(
                    f"duplicate key '{key}' (the first is at line {out.key_loc(key).line})",
                    _loc(self.file, key_node), hint="YAML keeps only one; rename or merge them"))
            out[key] = self.construct_object(value_node, deep=True)
            out.key_locs[key] = _loc(self.file, key_node)
            out.value_locs[key] = _loc(self.file, value_node)
        return out

    def construct_sequence(self, node, deep=False):
        out = LocList(loc=_loc(self.file, node))
        for child in node.value:
            out.append(self.construct_object(child, deep=True))
            out.item_locs.append(_loc(self.file, child))
        return out


def _construct_replace(loader: _Loader, node: yaml.Node):
    value = loader.construct_mapping(node)
    value.replace = True
    return value


_Loader.add_constructor("tag:yaml.org,2002:map", lambda ld, n: ld.construct_mapping(n))
_Loader.add_constructor("tag:yaml.org,2002:seq", lambda ld, n: ld.construct_sequence(n))
_Loader.add_constructor("!delete", lambda ld, n: DELETE)
_Loader.add_constructor("!replace", _construct_replace)


def load_text(text: str, file: str) -> Any:
    """Parse YAML text; raise SpecError with the position of a syntax error or duplicate keys."""
    loader = _Loader(text, file)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        raise SpecError([_yaml_error(err, text, file)]) from None
    except yaml.YAMLError as err:
        raise located_error(f"invalid YAML: {err}", file) from None
    finally:
        loader.dispose()
    if loader.problems:
        for problem in loader.problems:
            problem.path = _path_of(data, problem.loc)
        raise SpecError(loader.problems)
    return data


def _yaml_error(err: yaml.MarkedYAMLError, text: str, file: str) -> Diagnostic:
    """A parser error at the place to fix: an unclosed bracket where it opens, a tab where it is."""
    problem, context = str(err.problem or err), str(err.context or "")
    mark = err.problem_mark or err.context_mark
    lines = text.splitlines()
    if mark and mark.line < len(lines) and "\t" in lines[mark.line][:mark.column + 1]:
        col = lines[mark.line].index("\t")
        return Diagnostic("invalid YAML: a tab character", Loc(file, mark.line + 1, col + 1),
                          hint="indent with spaces, not tabs")
    if err.context_mark and "flow" in context and "did not find expected" in problem:
        opened = err.context_mark
        kind = context.removeprefix("while parsing a ")
        return Diagnostic(f"invalid YAML: this {kind} is never closed ({problem} at line "
                          f"{mark.line + 1})", Loc(file, opened.line + 1, opened.column + 1),
                          hint="unclosed bracket: close it with the matching ] or }")
    loc = Loc(file, mark.line + 1, mark.column + 1) if mark else Loc(file)
    hint = ("quote values that contain ': ' or start a nested mapping on its own line"
            if "mapping values" in problem else
            "check the indentation and brackets around this position")
    return Diagnostic(f"invalid YAML: {problem}", loc, hint=hint)


def _path_of(data: Any, loc: Loc, prefix: tuple = ()) -> str:
    """The node path of the mapping entry written at `loc` (graph and block keys left out)."""
    if isinstance(data, LocDict):
        for key, value in data.items():
            here = (*prefix, str(key))
            if data.key_loc(key) == loc:
                return _node_part(here)
            found = _path_of(value, loc, here)
            if found:
                return found
    elif isinstance(data, LocList):
        for i, value in enumerate(data):
            found = _path_of(value, loc, (*prefix, str(i)))
            if found:
                return found
    return ""


_STRUCTURE = {"graph", "nodes", "networks", "blocks", "seq", "args"}


def _node_part(keys: tuple) -> str:
    # `graph.layer1.seq.0.conv` -> `layer1.0.conv`: the path as nodes are named
    return ".".join(k for k in keys if k not in _STRUCTURE)


def load_file(path: str | Path) -> Any:
    """Read and parse one YAML file, with a clear error when it does not exist."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise located_error(f"no such file: {path}", path,
                            hint="give a path to a .yaml spec or a bundled spec name; "
                                 "`engine list` shows the bundled ones") from None
    except (IsADirectoryError, UnicodeDecodeError) as err:
        raise located_error(f"cannot read {path}: {err}", path) from None
    return load_text(text, str(path))
