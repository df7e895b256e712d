"""`engine view`'s web server: the standard library's ThreadingHTTPServer on the loopback address.

Routes (GET only; nothing a request sends is executed or used as a file name):
    /                        the index of the spec files the viewer may show
    /view?a=ID[&b=ID]        a spec's page, or the diff of two; &set=K=V (and &set_b=) as --set
    /api/view?...&expand=P   the page's data for other open blocks or params (JSON)
    /api/version?...         changes when a file of the page's specs is saved (for --watch)
    /api/stats?id=ID         a spec's parameters and MACs (for the index)
    /assets/viewer.js, /assets/viewer.css
Requests whose Host is not the loopback address are refused, so a web page elsewhere cannot
reach the viewer through a name that resolves to 127.0.0.1 (DNS rebinding).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from engine.compiler.ir import located_error
from engine.views.viewer.pages import CSP, asset, page_html
from engine.views.viewer.workspace import NotFound, Workspace

HOST = "127.0.0.1"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class ViewerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, workspace: Workspace, port: int = 0):
        self.workspace = workspace
        super().__init__((HOST, port), _Handler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"


class _Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        if not self.trusted_host():
            return self.send(403, b"forbidden host", "text/plain; charset=utf-8")
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        route = ROUTES.get(url.path)
        try:
            if route is not None:
                return route(self, query)
            if url.path.startswith("/assets/"):
                name = url.path.removeprefix("/assets/")
                return self.send(200, asset(name), _TYPES[os.path.splitext(name)[1]])
        except (NotFound, KeyError):
            pass
        except (BrokenPipeError, ConnectionResetError):  # the page went away (a reload)
            return None
        except Exception as err:  # noqa: BLE001 (a bug: the page says so, the server goes on)
            if os.environ.get("ENGINE_DEBUG"):
                traceback.print_exc()
            return self.send_json({"internal": f"internal error: {type(err).__name__}: {err}"}, 500)
        self.send(404, b"not found", "text/plain; charset=utf-8")

    def trusted_host(self) -> bool:
        host = (self.headers.get("Host") or "").rpartition(":")[0] or self.headers.get("Host", "")
        return host in (HOST, "localhost", "[::1]")

    # ---- routes ---------------------------------------------------------------------------
    def index(self, query: dict) -> None:
        self.send_page(self.server.workspace.index(), "engine view")

    def view(self, query: dict) -> None:
        data = self.server.workspace.page(**_page_args(query))
        self.send_page(data, data.get("title") or data["id"])

    def api_view(self, query: dict) -> None:
        self.send_json(self.server.workspace.page(**_page_args(query), expand=query.get("expand", [])
                                                  if "expanded" in query else None))

    def api_version(self, query: dict) -> None:
        self.send_json({"version": self.server.workspace.version(**_page_args(query))})

    def api_stats(self, query: dict) -> None:
        self.send_json(self.server.workspace.stats(_one(query, "id")))

    # ---- responses --------------------------------------------------------------------------
    def send_page(self, data: dict, title: str) -> None:
        body = page_html(data, title, csp=False).encode()  # the policy goes in the header
        self.send(200, body, "text/html; charset=utf-8")

    def send_json(self, data, status: int = 200) -> None:
        self.send(status, json.dumps(data, allow_nan=False).encode(), "application/json")

    def send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the standard library's name)
        if os.environ.get("ENGINE_DEBUG"):
            super().log_message(format, *args)


ROUTES = {"/": _Handler.index, "/view": _Handler.view, "/api/view": _Handler.api_view,
          "/api/version": _Handler.api_version, "/api/stats": _Handler.api_stats}


def _one(query: dict, key: str) -> str:
    values = query.get(key)
    if not values:
        raise NotFound(key)
    return values[0]


def _page_args(query: dict) -> dict:
    return {"a": _one(query, "a"), "b": (query.get("b") or [None])[0],
            "overrides": tuple(query.get("set", [])), "overrides_b": tuple(query.get("set_b", []))}


def serve(workspace: Workspace, port: int = 0, open_browser: bool = True, path: str = "") -> None:
    """Serve until interrupted, printing the address (and opening a browser where there is one)."""
    try:
        server = ViewerServer(workspace, port)
    except OSError as err:  # the port is taken, or a privileged one
        raise located_error(f"cannot listen on {HOST}:{port}: {err.strerror or err}",
                            hint="leave out --port for a free one, or pick another") from None
    url = server.url + path
    print(f"engine view: serving on {url}  (Ctrl-C stops)", flush=True)
    if open_browser:
        _open(url)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _open(url: str) -> None:
    import webbrowser
    try:
        webbrowser.get().open(url)
    except webbrowser.Error:  # no browser on this machine (a server, a container): the address is printed
        print("engine view: no browser found; open the address above", file=sys.stderr)
