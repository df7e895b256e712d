"""Stage 1, load: read YAML safely, keeping the line and column of every key and value.

Mappings become `LocDict`s and sequences `LocList`s; both remember where each entry came
from so every later error can point at the source. Two tags exist for `extends`:
`!delete` removes an inherited entry and `!replace {...}` replaces it instead of merging.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from engine.compiler.ir import Diagnostic, Loc, LocDict, LocList, SpecError, located_error
from engine.compiler.limits import limit


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
            key = self._key(key_node)
            if key is None:
                continue
            if key in out:
                self.problems.append(Diagnostic(
                    f"duplicate key '{key}' (the first is at line {out.key_loc(key).line})",
                    _loc(self.file, key_node), hint="YAML keeps only one; rename or merge them"))
            out[key] = self.construct_object(value_node, deep=True)
            out.key_locs[key] = _loc(self.file, key_node)
            out.value_locs[key] = _loc(self.file, value_node)
        self._merge_keys(out)
        return out

    def _merge_keys(self, out: LocDict) -> None:
        """The tag-free spelling of the tags, for editors and JSON Schema checkers that refuse
        custom tags: `$replace: true` in a mapping is `!replace` on it, and `$delete: [a, b]`
        (or `$delete: a`) in a mapping is `a: !delete` and `b: !delete` there."""
        if "$replace" in out:
            loc, value = out.value_loc("$replace"), out.pop("$replace")
            out.key_locs.pop("$replace", None), out.value_locs.pop("$replace", None)
            if value is True:
                out.replace = True
            else:
                self.problems.append(Diagnostic(
                    f"`$replace:` takes true, not {value!r}", loc,
                    hint="write `$replace: true` in the mapping that replaces the inherited one"))
        if "$delete" in out:
            loc, names = out.value_loc("$delete"), out.pop("$delete")
            out.key_locs.pop("$delete", None), out.value_locs.pop("$delete", None)
            items = list(zip(names, names.item_locs)) if isinstance(names, LocList) else [(names, loc)]
            for name, at in items:
                if not isinstance(name, str):
                    self.problems.append(Diagnostic(
                        f"`$delete:` lists names; {name!r} is not one", at,
                        hint="write `$delete: [name1, name2]` with the inherited keys to remove"))
                elif name in out:
                    self.problems.append(Diagnostic(
                        f"'{name}' is both deleted (`$delete:`) and given here", at,
                        hint="to redefine it, give it without deleting it (or with `$replace: true`)"))
                else:
                    out[name] = DELETE
                    out.key_locs[name] = out.value_locs[name] = at

    def _key(self, node: yaml.Node) -> str | None:
        """A mapping key, which the spec language only allows as a name (a string). Anything
        else is recorded as a problem (the document is refused once fully read) and skipped."""
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str":
            return node.value
        if isinstance(node, yaml.ScalarNode):
            kind = {"int": "an integer", "float": "a number", "bool": "true or false",
                    "null": "null"}.get(node.tag.rsplit(":", 1)[-1], f"a {node.tag} value")
            what, hint = f"the key `{node.value or '~'}` is read as {kind}", \
                f"keys are names: quote it ('{node.value}':) or choose a word"
        else:
            what = "a key is a " + ("list" if isinstance(node, yaml.SequenceNode) else "mapping")
            hint = "keys are names (strings); write the key as one word"
        self.problems.append(Diagnostic(what, _loc(self.file, node), hint=hint))
        return None

    def construct_sequence(self, node, deep=False):
        out = LocList(loc=_loc(self.file, node))
        for child in node.value:
            out.append(self.construct_object(child, deep=True))
            out.item_locs.append(_loc(self.file, child))
        return out


def _construct_replace(loader: _Loader, node: yaml.Node):
    if not isinstance(node, yaml.MappingNode):
        loader.problems.append(Diagnostic(
            "`!replace` marks a mapping", _loc(loader.file, node),
            hint="put it before a mapping (`key: !replace {a: 1}`); a list or a value replaces "
                 "the base's without a tag"))
        return None
    value = loader.construct_mapping(node)
    value.replace = True
    return value


_Loader.add_constructor("tag:yaml.org,2002:map", lambda ld, n: ld.construct_mapping(n))
_Loader.add_constructor("tag:yaml.org,2002:seq", lambda ld, n: ld.construct_sequence(n))
_Loader.add_constructor("!delete", lambda ld, n: DELETE)
_Loader.add_constructor("!replace", _construct_replace)


def load_text(text: str, file: str) -> Any:
    """Parse YAML text; raise SpecError with the position of a syntax error or duplicate keys.

    The composed node graph is measured before anything is built from it: the number of values
    with every alias expanded (`yaml_nodes`, which stops a billion-laughs file) and the nesting
    depth (`yaml_depth`), each a located error when over its limit."""
    loader = _Loader(text, file)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # the pure-Python composer recurses once per nesting level
            raise SpecError([_too_deep(Loc(file), "beyond what the parser can follow")]) from None
        if node is None:
            return None
        _check_size(node, file)
        try:
            data = loader.construct_document(node)
        except RecursionError:  # only where ENGINE_MAX_YAML_DEPTH was raised very high
            raise SpecError([_too_deep(Loc(file), "beyond what the parser can follow")]) from None
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


def _check_size(root: yaml.Node, file: str) -> None:
    """The expanded size and the depth of a composed document, in one pass over its nodes.

    Each node is visited once (an alias is the same node object, so its size is remembered),
    without recursion; a node that contains itself through an alias is an error too."""
    max_nodes, max_depth = limit("yaml_nodes").value(), limit("yaml_depth").value()
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if size[key] > max_nodes:
                raise SpecError([limit("yaml_nodes").check(size[key], _loc(file, node))])
            if depth[key] > max_depth:
                raise SpecError([limit("yaml_depth").check(depth[key], _loc(file, node))])
            continue
        if key in size:
            continue
        if key in open_:
            raise located_error("a YAML alias refers to a value that contains it", _loc(file, node),
                                hint="an anchor (&name) cannot be used (*name) inside itself")
        open_.add(key)
        stack.append((node, True))
        for kid in _children(node):
            if id(kid) not in size:
                if id(kid) in open_:
                    raise located_error("a YAML alias refers to a value that contains it",
                                        _loc(file, kid),
                                        hint="an anchor (&name) cannot be used (*name) "
                                             "inside itself")
                stack.append((kid, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _too_deep(loc: Loc, how: str) -> Diagnostic:
    lim = limit("yaml_depth")
    return Diagnostic(f"{lim.what} is {how}, over the limit of {lim.value():,}", loc,
                      hint="a spec nests a few levels deep; this file nests without end")


def _yaml_error(err: yaml.MarkedYAMLError, text: str, file: str) -> Diagnostic:
    """A parser error at the place to fix: an unclosed bracket where it opens, a tab where it is."""
    problem, context = str(err.problem or err), str(err.context or "")
    mark = err.problem_mark or err.context_mark
    if "maximum nesting depth" in problem:  # libyaml stops at 1,000 levels
        return _too_deep(Loc(file, mark.line + 1, mark.column + 1) if mark else Loc(file),
                         "over 1,000")
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


def load_file(path: str | Path, via: Loc | None = None) -> Any:
    """Read and parse one YAML file, with a clear error when it does not exist."""
    return load_text(read_file(path, via), str(path))


def read_file(path: str | Path, via: Loc | None = None) -> str:
    """The text of a spec file; a located error (at `via`, the `extends:` that named it, or the
    file) for anything but a regular UTF-8 file within the size limit. A FIFO or a device is
    never opened: opening a FIFO waits for a writer, and /dev/zero never ends."""
    path = Path(path)
    where: Loc | Path = via or path
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise located_error(f"no such file: {path}", where,
                            hint="give a path to a .yaml spec or a bundled spec name; "
                                 "`engine list` shows the bundled ones") from None
    except ValueError:  # a NUL byte in the name
        raise located_error(f"the file name {str(path)!r} contains a NUL byte", where) from None
    except OSError as err:
        raise located_error(f"cannot read {path}: {_os_reason(err)}", where) from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else (
            "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or special file")
        raise located_error(f"{path} is not a regular file (it is {kind})", where,
                            hint="give the path of a .yaml file")
    top = limit("file_bytes").value()
    too_big = limit("file_bytes").check(info.st_size, where if isinstance(where, Loc) else
                                        Loc(str(path)))
    if too_big:
        raise SpecError([too_big])
    try:
        with open(path, "rb") as f:
            data = f.read(top + 1)
    except OSError as err:
        raise located_error(f"cannot read {path}: {_os_reason(err)}", where) from None
    too_big = limit("file_bytes").check(len(data), Loc(str(path)))
    if too_big:  # it grew after the stat
        raise SpecError([too_big])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        col = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise located_error(f"{path} is not UTF-8 text: byte {err.start} (0x{data[err.start]:02x}) "
                            f"cannot be decoded", Loc(str(path), line, col),
                            hint="save the file as UTF-8") from None


def _os_reason(err: OSError) -> str:
    if err.errno == errno.ELOOP:
        return "a loop of symbolic links"
    return err.strerror or str(err)
