"""`engine view --export DIR`: the viewer's pages as a static site that needs no server (for
docs): index.html, one page per spec (and the diff page for two), and the assets.

With no server to re-render, each page carries the pictures that one click can lead to: the
default one, each block opened (with the blocks above it), and each block that opens by default
closed. A click then shows the picture of that one block opened or closed; the live viewer keeps
any number of blocks open at once.
"""

from __future__ import annotations

import re
from pathlib import Path

from engine.views.diff import diff_specs
from engine.views.viewer.diagram import canonical, default_expand, diff_diagram, spec_diagram
from engine.views.viewer.pages import ASSETS, asset, page_html
from engine.views.viewer.workspace import Workspace

MAX_PICTURES = 120  # per page: beyond this many blocks, the deeper ones stay closed


def export_site(workspace: Workspace, specs: list[str], diff: bool, folder: str | Path,
                sets: tuple[tuple, tuple] = ((), ())) -> Path:
    """Write the pages of `specs` (ids; with `diff`, the diff of the first two as well);
    `sets`: the --set overrides of the first spec and of the second."""
    folder = Path(folder)
    (folder / "assets").mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        (folder / "assets" / name).write_bytes(asset(name))
    links = []
    for i, spec_id in enumerate(specs):
        data = _spec_pictures(workspace, spec_id, sets[i] if i < len(sets) else ())
        links.append(_write(folder, page_name(spec_id), data))
    if diff and len(specs) == 2:
        data = _diff_pictures(workspace, specs[0], specs[1], sets)
        links.append(_write(folder, page_name(*specs), data))
    index = {"kind": "index", "static": True, "watch": False,
             "entries": [{"id": page["id"], "name": page.get("title") or page["id"],
                          "family": "", "summary": page.get("file", ""), "href": href,
                          "totals": page.get("totals"), "diff": page["kind"] == "diff"}
                         for href, page in links]}
    (folder / "index.html").write_text(page_html(index, "engine view", "assets/"), encoding="utf-8")
    return folder


def page_name(*ids: str) -> str:
    stem = "--".join(re.sub(r"[^A-Za-z0-9_.-]", "_", i.removesuffix(".yaml")) for i in ids)
    return ("diff-" if len(ids) > 1 else "view-") + stem + ".html"


def _write(folder: Path, name: str, data: dict) -> tuple[str, dict]:
    data.update(static=True, watch=False)
    (folder / name).write_text(page_html(data, data.get("title") or data["id"], "assets/"),
                               encoding="utf-8")
    return name, data


def _spec_pictures(workspace: Workspace, spec_id: str, overrides: tuple) -> dict:
    data = workspace.page(spec_id, None, overrides)
    shaped = workspace.loaded(spec_id, overrides).shaped
    if shaped is not None:
        data["pictures"] = _pictures(data, default_expand(shaped),
                                     lambda expand: spec_diagram(shaped, expand))
    return data


def _diff_pictures(workspace: Workspace, a: str, b: str, sets: tuple[tuple, tuple]) -> dict:
    data = workspace.page(a, b, *sets)
    first, second = workspace.loaded(a, sets[0]).shaped, workspace.loaded(b, sets[1]).shaped
    if first is not None and second is not None:
        result = diff_specs(first, second)
        data["pictures"] = _pictures(data, [], lambda expand: diff_diagram(result, first, second,
                                                                             expand))
    return data


def _pictures(data: dict, default: list[str], draw) -> dict:
    """Expand key (canonical paths joined by newlines) -> diagram, for every state one click
    from the default picture leads to."""
    states = [canonical(default)]
    blocks = [p for p, info in data["nodes"].items() if info.get("block")]
    states += [canonical([*default, p]) for p in blocks]
    states += [canonical([d for d in canonical(default) if d != p and not d.startswith(p + ".")])
               for p in canonical(default)]
    pictures: dict[str, dict] = {"\n".join(states[0]): data["diagram"]}
    for state in states:
        key = "\n".join(state)
        if key not in pictures and len(pictures) < MAX_PICTURES:
            pictures[key] = draw(state)
    return pictures
