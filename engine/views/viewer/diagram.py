"""The viewer's diagrams: the renderer's DOT (render_dot, render_diff_dot) laid out by Graphviz as
SVG, with the map from each box's dot id (its SVG <title>) back to the node path it draws.

Expanding and collapsing re-renders with the renderer's `expand` option at depth 1, so the
viewer's pictures are exactly `engine render`'s: `DEFAULT_DEPTH` opens the blocks that
`engine render` opens by default, and the page adds or removes paths from there.
"""

from __future__ import annotations

from engine.compiler.ir import Shaped, located_error
from engine.views.render import render_diff_dot, render_dot

DEFAULT_DEPTH = 2  # engine render's --depth default


def default_expand(shaped: Shaped) -> list[str]:
    """The blocks engine render draws open at its default depth: top-level, non-repeated ones."""
    return [node.path for graph in shaped.spec.networks.values() for node in graph.nodes
            if openable(node) and node.repeat == 0 and DEFAULT_DEPTH > 1]


def openable(node) -> bool:
    """Whether the renderer can draw a node open (a block with its own nodes)."""
    return node.kind == "graph" and node.shared is None and node.body is not None


def canonical(expand) -> list[str]:
    """An expand list as the renderer reads it (each path with its prefixes), sorted: one key
    per distinct picture."""
    out = set()
    for path in expand:
        parts = str(path).split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sorted(out)


def spec_diagram(shaped: Shaped, expand: list[str]) -> dict:
    ids: dict[str, str] = {}
    notes: list[str] = []
    dot = render_dot(shaped, depth=1, expand=canonical(expand), notes=notes, ids=ids)
    return _picture(dot, ids, notes)


def diff_diagram(result, a: Shaped, b: Shaped, expand: list[str]) -> dict:
    ids: dict[str, str] = {}
    notes: list[str] = []
    dot = render_diff_dot(result, a, b, expand=canonical(expand), notes=notes, ids=ids)
    return _picture(dot, ids, notes)


def _picture(dot: str, ids: dict[str, str], notes: list[str]) -> dict:
    """{svg, ids: dot id -> node path, notes}."""
    return {"svg": to_svg(dot), "ids": {dot_id: path for path, dot_id in ids.items()},
            "notes": notes}


def to_svg(dot: str) -> str:
    """Graphviz's SVG of `dot`, from the <svg> element on (no XML prolog: it goes inside a page)."""
    import graphviz
    try:
        svg = graphviz.Source(dot).pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound:
        raise located_error("Graphviz's `dot` program is not installed",
                            hint="apt-get install graphviz (or brew install graphviz)") from None
    return svg[svg.find("<svg"):]
