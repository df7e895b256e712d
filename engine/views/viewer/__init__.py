"""`engine view`: specs, their diagrams and their diffs in the browser, live while you edit.

    catalog    which spec files the viewer may show (the folders it was given), by id
    source     the YAML lines that made a node
    diagram    the renderer's DOT as SVG, opened and closed with its `expand` option
    model      a page's data: one spec (nodes, params, summary, diagram) or the diff of two
    workspace  the analysed specs, kept until a file they came from changes (--watch)
    pages      the HTML shell, the page's data inside it as script-safe JSON
    server     the local web server (127.0.0.1 only)
    export     the same pages as a static site (--export DIR)
    assets/    the page's script and style (no dependencies)
"""

from __future__ import annotations

from pathlib import Path

from engine.compiler.ir import located_error
from engine.views.viewer.catalog import Catalog
from engine.views.viewer.workspace import Workspace


def view(specs: list[str], overrides: list[str] = (), overrides_b: list[str] = (),
         roots: list[str] = (), port: int = 0, watch: bool = False, export: str | None = None,
         open_browser: bool = True) -> int:
    """Serve (or with `export`, write) the page of one spec, the diff of two, or the index."""
    for root in roots:
        if not Path(root).is_dir():
            raise located_error(f"--root {root}: no such folder", root)
    catalog = Catalog([Path(r) for r in roots])
    ids = [catalog.add_spec(s) for s in specs]  # a missing spec: SpecError, as other commands
    workspace = Workspace(catalog, watch)
    sets = (tuple(overrides), tuple(overrides_b))
    if export:
        from engine.views.viewer.export import export_site
        ids = ids or [e.id for e in catalog.entries() if not e.id.startswith("bundled/")]
        if not ids:
            raise located_error("engine view --export writes the pages of the specs it is given",
                                hint="name one or two specs, or a --root folder of them")
        folder = export_site(workspace, ids, len(ids) == 2, export, sets)
        print(f"wrote {folder / 'index.html'}")
        return 0
    from urllib.parse import urlencode

    from engine.views.viewer.server import serve
    path = ""
    if ids:  # analysed before the address is printed: the first page then comes at once
        workspace.page(ids[0], ids[1] if len(ids) > 1 else None, *sets)
        query = [("a", ids[0])] + ([("b", ids[1])] if len(ids) > 1 else [])
        query += [("set", s) for s in sets[0]] + [("set_b", s) for s in sets[1]]
        path = "view?" + urlencode(query)
    serve(workspace, port, open_browser, path)
    return 0


__all__ = ["Catalog", "Workspace", "view"]
