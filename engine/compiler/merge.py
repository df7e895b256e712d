"""Stage 2a, merge: follow `extends:` and `include:`, deep-merge, and apply `--set` overrides.

The result is one document (LocDict) whose every entry still knows its file and line.
Mappings merge key by key; lists and scalars replace; `!delete` removes an inherited entry
and `!replace {...}` replaces a mapping instead of merging into it. A spec may only read
files under its own folder or the bundled `specs/` folder.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

from engine.compiler.ir import Loc, LocDict, SpecError, located_error
from engine.compiler.limits import limit
from engine.compiler.load import DELETE, load_file
from engine.compiler.overrides import Override, apply_overrides, parse_overrides  # noqa: F401 (the --set grammar; re-exported)


def bundled_folder(name: str) -> Path:
    """The folder of the bundled `specs` or `recipes`: the package `engine.<name>`.

    pyproject.toml maps it to the repository's top-level folder, so an editable install reads
    the files there and a wheel carries them inside `engine/`. A source tree on PYTHONPATH that
    was never installed has no such package: its folders beside `engine/` are the same files."""
    try:
        folder = resources.files(f"engine.{name}")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / name
    if not isinstance(folder, Path):  # a zipped install: the loaders read files by path
        raise RuntimeError(f"engine.{name} is not a folder on disk ({folder}); install engine unzipped")
    return folder.resolve()


SPECS_DIR = bundled_folder("specs")
RECIPES_DIR = bundled_folder("recipes")


def find_spec(name: str) -> Path:
    """A spec given by path, or by bundled name (`resnet50` -> specs/resnet50.yaml)."""
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml") or "/" in name:
        return path
    bundled = SPECS_DIR / f"{name}.yaml"
    if bundled.exists():
        return bundled
    from engine.blocks.registry import suggest
    known = [p.stem for p in SPECS_DIR.glob("*.yaml")]
    raise located_error(f"no spec file or bundled spec named '{name}'", name,
                        hint=suggest(name, known) or "`engine list` shows bundled specs")


def load_merged(path: Path, overrides: dict[str, Any] | None = None,
                recipe: bool = False) -> LocDict:
    """Load a spec (or a recipe) with everything it extends and includes, then apply `--set`.

    A spec's single-word overrides name its params; a recipe's name its top-level keys (the
    grammar: engine/compiler/overrides.py)."""
    roots = (_resolve(path, None).parent, SPECS_DIR, RECIPES_DIR)
    doc = _load_chain(path, roots, [], _Loads())
    apply_overrides(doc, overrides or {}, recipe)
    return doc


class _Loads:
    """The files one `load_merged` has read: each is read and merged once, however many times it
    is reached (an include diamond), and there may be at most `files` of them."""

    def __init__(self) -> None:
        self.done: dict[Path, tuple[LocDict, int]] = {}  # path -> (merged doc, chain height)
        self.count = 0


def _load_chain(path: Path, roots: tuple[Path, ...], chain: list[Path], loads: _Loads,
                via: Loc | None = None) -> LocDict:
    """Load `path` and what it extends; `via` is the `extends:`/`include:` that asked for it."""
    doc, _ = _load_one(path, roots, chain, loads, via)
    return doc


def _load_one(path: Path, roots: tuple[Path, ...], chain: list[Path], loads: _Loads,
              via: Loc | None) -> tuple[LocDict, int]:
    """The merged document of `path` and the height of its extends:/include: chain below it."""
    resolved = _resolve(path, via)
    if resolved in chain:
        loop = " -> ".join(p.name for p in [*chain, resolved])
        raise located_error(f"extends loop: {loop}", via or path,
                            hint="remove one `extends:` so the chain ends")
    if resolved in loads.done:
        doc, height = loads.done[resolved]
        _check_depth(len(chain) + height, via or Loc(str(path)))
        return doc, height
    _check_depth(len(chain) + 1, via or Loc(str(path)))
    loads.count += 1
    too_many = limit("files").check(loads.count, via or Loc(str(path)))
    if too_many:
        raise SpecError([too_many])
    doc = load_file(path, via)
    if not isinstance(doc, LocDict):
        raise located_error("a spec must be a YAML mapping (name:, graph:, ...)",
                            getattr(doc, "loc", Loc(str(path), 1, 1)),
                            hint="write `name: ...`, `inputs: ...`, `graph: ...` at the top")
    height = 1
    for lib in _as_list(doc.get("include", [])):
        lib_doc, below = _load_one(_target(doc, "include", lib, path, roots), roots,
                                   [*chain, resolved], loads, doc.value_loc("include"))
        height = max(height, below + 1)
        doc = _merge_blocks(lib_doc, doc)
    if "extends" in doc:
        base, below = _load_one(_target(doc, "extends", doc["extends"], path, roots), roots,
                                [*chain, resolved], loads, doc.key_loc("extends"))
        height = max(height, below + 1)
        doc = deep_merge(base, doc)
        doc.pop("extends", None)
    loads.done[resolved] = (doc, height)
    return doc, height


def _resolve(path: Path, via: Loc | None) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as err:  # a loop of symbolic links (RuntimeError before 3.13)
        reason = getattr(err, "strerror", None) or str(err)
        raise located_error(f"cannot read {path}: {reason}", via or path) from None
    except ValueError:
        raise located_error(f"the file name {str(path)!r} contains a NUL byte",
                            via or path) from None


def _check_depth(depth: int, loc: Loc) -> None:
    too_deep = limit("include_depth").check(depth, loc)
    if too_deep:
        raise SpecError([too_deep])


def _target(doc: LocDict, key: str, name: Any, path: Path, roots) -> Path:
    loc = doc.value_loc(key)
    if not isinstance(name, str):
        raise located_error(f"`{key}:` must name a spec file", loc,
                            hint=f"write `{key}: resnet50.yaml`")
    if "\0" in name:
        raise located_error(f"`{key}:` names a file with a NUL byte in it: {name!r}", loc,
                            hint=f"write `{key}: resnet50.yaml`")
    try:
        target = Path(os.path.relpath((path.parent / name).resolve()))
        if not target.exists() and (SPECS_DIR / name).exists():
            target = SPECS_DIR / name
        inside = any(target.resolve().is_relative_to(root) for root in roots)
        exists = target.exists()
    except (OSError, RuntimeError) as err:  # a loop of symbolic links, a name too long
        reason = getattr(err, "strerror", None) or str(err)
        raise located_error(f"`{key}: {name}`: cannot read it: {reason}", loc) from None
    if not inside:
        raise located_error(f"`{key}: {name}` reaches outside the spec's folder", loc,
                            hint="specs may only use files beside them or bundled specs")
    if not exists:
        raise located_error(f"`{key}: {name}`: no such file", loc,
                            hint=f"looked in {path.parent} and {SPECS_DIR}")
    return target


def _merge_blocks(lib: LocDict, doc: LocDict) -> LocDict:
    """An included library contributes its `blocks:`; the including spec's own blocks win."""
    merged = LocDict(doc, loc=doc.loc)
    merged.key_locs, merged.value_locs = dict(doc.key_locs), dict(doc.value_locs)
    merged["blocks"] = deep_merge(lib.get("blocks", LocDict(loc=lib.loc)),
                                  doc.get("blocks", LocDict(loc=doc.loc)))
    merged.pop("include", None)
    return merged


def deep_merge(base: Any, over: Any) -> Any:
    """Merge `over` onto `base`: mappings key by key (base order first), anything else replaced."""
    if not (isinstance(base, LocDict) and isinstance(over, LocDict)) or over.replace:
        return over
    out = LocDict(base, loc=over.loc)
    out.key_locs = {**base.key_locs, **over.key_locs}
    out.value_locs = {**base.value_locs, **over.value_locs}
    for key, value in over.items():
        if value is DELETE:
            _delete(out, key, over)
        else:
            out[key] = deep_merge(base.get(key), value)
    return out


def _delete(out: LocDict, key: Any, over: LocDict) -> None:
    if key not in out:
        from engine.blocks.registry import suggest
        raise located_error(
            f"`{key}: !delete` but nothing named '{key}' is inherited", over.key_loc(key),
            str(key), suggest(str(key), [str(k) for k in out]) or
            f"the base has: {', '.join(map(str, out)) or 'nothing here'}")
    del out[key]


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, list) else [value]


def header_summary(path: Path, room: int = 120) -> str:
    """A spec's or recipe's header comment up to its first full stop, cut to `room` characters
    (`engine list` and the viewer's index show it; an unreadable file has none)."""
    lines = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
    for line in text.splitlines():
        if not line.startswith("#") or line.lstrip("# ").startswith("engine "):
            break  # the header ends at the YAML or at its command lines
        lines.append(line.lstrip("# ").strip())
    text = " ".join(lines)
    text = text[:text.find(". ") + 1] if ". " in text else text
    return text if len(text) <= room else text[:room - 1].rstrip() + "…"
