"""The HTML of the viewer's pages: one small shell per page, the page's data inside it as JSON,
and the script and style from this package's assets/ folder. The same shell serves the live
viewer and the static export; the data says which one it is in.

Everything a spec wrote reaches the page only as JSON data that the script puts into the page as
text (never as markup), and the JSON is written so that no string in it can end its <script>
element: `<`, `>` and `&` become \\u escapes.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files

ASSETS = ("viewer.js", "viewer.css")
# the pages load only their own script and style; injected markup could run nothing
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'")

SHELL = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
{csp}<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{assets}viewer.css">
</head>
<body>
<div id="app" class="app"><p class="loading">loading…</p></div>
<script type="application/json" id="viewer-data">{data}</script>
<script src="{assets}viewer.js"></script>
</body>
</html>
"""


def asset(name: str) -> bytes:
    """One of the page's assets (viewer.js, viewer.css), from the package."""
    if name not in ASSETS:
        raise KeyError(name)
    return files("engine.views.viewer").joinpath("assets", name).read_bytes()


def page_html(data: dict, title: str, assets: str = "/assets/", csp: bool = True) -> str:
    """A page with `data` embedded; `assets` is where viewer.js and viewer.css are (a relative
    folder in the static export)."""
    meta = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n' if csp else ""
    return SHELL.format(csp=meta, title=html.escape(title), assets=html.escape(assets),
                        data=script_json(data))


def script_json(data) -> str:
    """JSON that is safe inside a <script> element whatever its strings hold."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
