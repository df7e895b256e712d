"""`engine view` without a browser: which files the server serves, its address, the page data
(YAML lines, errors as the CLI prints them), script-safe JSON and the static export's files.
The browser tests are in test_viewer_browser.py."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
import urllib.request

import pytest

from engine.cli import main
from engine.compiler import analyze
from engine.compiler.ir import SpecError
from engine.compiler.report import format_all
from engine.views.viewer import Catalog, Workspace
from engine.views.viewer.pages import page_html, script_json
from engine.views.viewer.server import ViewerServer
from tests.conftest import REPO

SPECS = REPO / "tests" / "viewer_specs"
TINY = """\
# a tiny spec for the viewer's tests
name: tiny
params: {width: 8}
inputs: {x: [B, 4]}
blocks:
  unit:
    params: {width: int}
    nodes:
      fc: {op: linear, out: $width}
      act: {op: relu}
graph:
  stem: {op: linear, out: $width}
  body: {op: unit, repeat: 2, args: {width: $width}}
outputs: {y: body}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("specs") / "tiny"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(TINY)
    srv = ViewerServer(Workspace(Catalog([folder, SPECS])))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def get(srv, path: str, host: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*srv.server_address, timeout=60)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host or f"127.0.0.1:{srv.server_address[1]}")
    conn.endheaders()
    response = conn.getresponse()
    return response.status, response.read()


def test_binds_the_loopback_address_only(server):
    assert server.server_address[0] == "127.0.0.1"
    assert server.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("path", [
    "/view?a=bundled/../../etc/passwd", "/view?a=/etc/passwd", "/view?a=bundled//etc/passwd",
    "/view?a=tmp/../../../../etc/passwd", "/view?a=bundled/%2e%2e/%2e%2e/pyproject.toml",
    "/api/view?a=bundled/..%2F..%2Fetc%2Fpasswd", "/api/stats?id=bundled/../README.md",
    "/../../etc/passwd", "/assets/../server.py", "/assets/%2e%2e/server.py", "/etc/passwd",
    "/assets/viewer.js/../../catalog.py", "/view?a=bundled/resnet50.yaml&b=/etc/passwd",
])
def test_nothing_outside_the_spec_folders_is_served(server, path):
    status, body = get(server, path)
    assert status == 404 and b"root:" not in body and b"import" not in body


def test_a_symbolic_link_out_of_a_folder_is_refused(tmp_path):
    (tmp_path / "inside").mkdir()
    (tmp_path / "outside.yaml").write_text(TINY)
    (tmp_path / "inside" / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    catalog = Catalog([tmp_path / "inside"])
    assert catalog.path("inside/link.yaml") is None
    assert [e.id for e in catalog.entries() if not e.id.startswith("bundled/")] == []


def test_another_host_name_is_refused(server):
    assert get(server, "/", host="attacker.example:80")[0] == 403  # DNS rebinding
    assert get(server, "/", host=f"localhost:{server.server_address[1]}")[0] == 200


def test_the_pages_and_assets_are_served(server):
    status, body = get(server, "/")
    assert status == 200 and b"tiny/tiny.yaml" in body and b"bundled/resnet50.yaml" in body
    assert get(server, "/assets/viewer.js")[0] == 200
    status, body = get(server, "/api/view?a=tiny/tiny.yaml&set=width=16")
    page = json.loads(body)
    assert status == 200 and page["nodes"]["stem"]["shape"] == [[1, 16]]
    assert page["diagram"]["svg"].startswith("<svg")
    status, body = get(server, "/api/stats?id=tiny/tiny.yaml")
    assert json.loads(body)["params"] == 4 * 8 + 8 + 2 * (8 * 8 + 8)


def test_a_node_carries_its_yaml_lines(server):
    page = json.loads(get(server, "/api/view?a=bundled/resnet50.yaml")[1])
    node = page["nodes"]["layer1.0.conv2"]
    own = node["source"][0]
    assert own["file"].endswith("resnet50.yaml") and {23, 24} <= set(own["marked"])
    lines = dict(zip(range(own["first"], own["first"] + len(own["lines"])), own["lines"]))
    assert lines[23].strip().startswith("conv2: {op: conv") and "groups: $groups" in lines[24]
    assert node["args"]["k"] == 3 and node["shape"] == [[1, 64, 56, 56]]


def test_errors_are_the_clis_text(server):
    spec = SPECS / "hostile_errors.yaml"
    with pytest.raises(SpecError) as err:
        analyze(spec)
    page = json.loads(get(server, "/api/view?a=viewer_specs/hostile_errors.yaml")[1])
    assert page["errors"] == format_all(err.value.diagnostics)
    assert "hostile_errors.yaml:7:3: error" in page["errors"] and "\n          ^" in page["errors"]
    assert "nodes" not in page


def test_a_bad_override_shows_its_error(server):
    query = urllib.parse.urlencode({"a": "tiny/tiny.yaml", "set": "width=[1"})
    page = json.loads(get(server, "/api/view?" + query)[1])
    assert page["errors"] and "error" in page["errors"]


def test_json_in_a_page_cannot_close_its_script_element():
    text = script_json({"name": "</script><script>alert(1)</script>", "x": "<!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text)["name"] == "</script><script>alert(1)</script>"
    page = page_html({"title": "</script>"}, "<b>title</b>")
    assert page.count("</script>") == 2 and "<title>&lt;b&gt;title&lt;/b&gt;</title>" in page


def test_the_diff_page_holds_the_changes_and_the_weight_table():
    workspace = Workspace(Catalog([]))
    page = workspace.page("bundled/resnet50_v1.yaml", "bundled/resnet50.yaml")
    convs = {c["path"] for c in page["changes"] if c["op"] == "conv" and c["own"]}
    assert convs == {f"layer{i}.0.conv{j}" for i in (2, 3, 4) for j in (1, 2)}
    assert page["weights"]["changed"] == 0 and page["weights"]["unchanged"] > 300
    a = page["nodes"]["layer2.0.conv1"]["source_a"][0]
    assert a["file"].endswith("resnet50_v1.yaml") and "conv1: {stride: $stride}" in a["lines"][
        a["marked"][0] - a["first"]]


def test_export_writes_a_static_site(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "tiny.yaml").write_text(TINY)
    out = tmp_path / "site"
    assert main(["view", str(tmp_path / "tiny" / "tiny.yaml"), "--export", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["assets", "index.html", "view-tiny_tiny.html"]
    assert sorted(p.name for p in (out / "assets").iterdir()) == ["viewer.css", "viewer.js"]
    page = (out / "view-tiny_tiny.html").read_text()
    assert "Content-Security-Policy" in page and '"pictures"' in page


def test_view_is_a_command(capsys):
    with pytest.raises(SystemExit):
        main(["view", "--help"])
    out = capsys.readouterr().out
    assert "--watch" in out and "--export" in out and "127.0.0.1" in out



def test_engine_view_prints_its_address_and_serves_the_page(monkeypatch, capsys):
    served: list[str] = []

    def one_request(self):  # instead of serving forever: the page the test asks for, then return
        served.append(self.url)
        self.handle_request()
    monkeypatch.setattr(ViewerServer, "serve_forever", one_request)
    thread = threading.Thread(target=main, args=(["view", str(SPECS / "hostile.yaml"), "--no-browser"],))
    thread.start()
    deadline = time.monotonic() + 60
    while not served and time.monotonic() < deadline:
        time.sleep(0.02)
    out = capsys.readouterr().out
    assert out.startswith(f"engine view: serving on {served[0]}view?a=viewer_specs%2Fhostile.yaml")
    with urllib.request.urlopen(out.split()[4], timeout=60) as response:
        page = response.read().decode()
    thread.join(timeout=60)
    assert 'id="viewer-data"' in page and "<script>window.pwned" not in page


def test_families_are_the_leading_name():
    from engine.views.viewer.catalog import family
    assert [family(n) for n in ("resnet50", "deeplabv3_resnet50", "efficientnet_v2_l", "vit_b16")] == \
        ["resnet", "deeplabv3", "efficientnet", "vit"]


def test_a_new_error_after_a_save_quotes_the_saved_line(tmp_path):
    """The excerpt of a located error is read from the file as saved, not from a cached copy."""
    from engine.views.viewer import model
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\ninputs: {x: [B, 4]}\ngraph:\n  fc: {op: linear, out: nope}\noutputs: {y: fc}\n")
    assert "out: nope}" in model.load(spec).errors
    spec.write_text("name: s\ninputs: {x: [B, 4]}\ngraph:\n  fc: {op: linearx, out: 4}\noutputs: {y: fc}\n")
    assert "{op: linearx, out: 4}" in model.load(spec).errors
