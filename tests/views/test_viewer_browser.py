"""`engine view` in a real headless browser (Chromium driven by Selenium): expanding blocks and
reading a node's YAML lines, the diff's colours, live reloading on save, escaping of hostile
specs and the static export opened from file://.

Needs Chromium and its driver from the system package manager (scripts/setup.sh installs them
with apt-get where it can) and selenium (the `dev` extra); without them every test here skips
with one reason.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from engine.views.viewer import Catalog, Workspace
from engine.views.viewer.server import ViewerServer
from tests.conftest import REPO
from tests.views.test_viewer import TINY

SPECS = REPO / "tests" / "viewer_specs"
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver") or next(
    (p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if Path(p).exists()), None)


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium"
    return None if CHROMIUM and DRIVER else "chromium and chromedriver"


pytestmark = pytest.mark.skipif(
    _missing() is not None,
    reason=f"no headless browser: needs {_missing()} (apt-get install chromium chromium-driver, "
           "as scripts/setup.sh does as root; pip install -e '.[dev]' for selenium)")

# the extended file of the watched spec: the tiny spec of the viewer's other tests, renamed
BASE = TINY.replace("# a tiny spec for the viewer's tests\nname: tiny",
                    "# the extended file of the watched spec\nname: base")
CHILD = """\
# the watched spec: it extends base.yaml
extends: base.yaml
name: child
"""


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--allow-file-access-from-files"):
        options.add_argument(arg)
    # an explicit driver: Selenium Manager then downloads nothing
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("watched")
    (root / "base.yaml").write_text(BASE)
    (root / "child.yaml").write_text(CHILD)
    return root


@pytest.fixture(scope="module")
def viewer(folder):
    server = ViewerServer(Workspace(Catalog([folder, SPECS]), watch=True))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.url
    server.shutdown()
    server.server_close()


def open_page(browser, url: str) -> None:
    browser.get(url)
    wait(browser, lambda d: d.execute_script("return document.body.getAttribute('data-ready')"))


def wait(browser, condition, timeout: float = 20):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait
    # the page redraws its table and panel on each update: an element found a moment ago may be gone
    ignored = (StaleElementReferenceException, NoSuchElementException)
    return WebDriverWait(browser, timeout, poll_frequency=0.05, ignored_exceptions=ignored).until(condition)


def renders(browser) -> int:
    return browser.execute_script("return window.viewerRenders || 0")


def click_and_wait(browser, element) -> None:
    before = renders(browser)
    element.click()
    wait(browser, lambda d: renders(d) > before)


def node(browser, path: str):
    from selenium.webdriver.common.by import By
    return browser.find_element(By.CSS_SELECTOR, f'g.vnode[data-path="{path}"]')


def paths(browser, css: str = "g.vnode") -> list[str]:
    return browser.execute_script("return Array.from(document.querySelectorAll(arguments[0]))"
                                  ".map(g => g.getAttribute('data-path'))", css)


def no_script_ran(browser) -> bool:
    """No script of the hostile specs ran, and none of their markup became elements (the page's
    Content-Security-Policy would stop the scripts anyway: the second check tests the escaping)."""
    injected = browser.execute_script(
        "return document.querySelectorAll('#app img, #app script, #app b, #app svg svg, "
        "#app [onerror], #app [onload], #app [onmouseover]').length")
    return browser.execute_script("return window.pwned === undefined") and injected == 0


# ---- one spec ---------------------------------------------------------------------------------

def test_resnet50_layer1_opens_in_place_and_shows_its_yaml(browser, viewer):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    open_page(browser, viewer + "view?a=bundled/resnet50.yaml")
    assert "layer1" in paths(browser) and "layer1.0" not in paths(browser)
    click_and_wait(browser, node(browser, "layer1"))
    assert "layer1" in paths(browser, "g.vcluster")
    assert [p for p in paths(browser) if p.startswith("layer1.")] == ["layer1.0", "layer1.1", "layer1.2"]
    click_and_wait(browser, node(browser, "layer1.0"))
    conv2 = node(browser, "layer1.0.conv2")
    ActionChains(browser).move_to_element(node(browser, "layer1.0.bn1")).perform()
    wait(browser, lambda d: d.find_element(By.ID, "detail-path").text == "layer1.0.bn1")
    conv2.click()
    assert browser.find_element(By.ID, "detail-path").text == "layer1.0.conv2"
    assert "selected" in node(browser, "layer1.0.conv2").get_attribute("class")
    details = browser.find_element(By.ID, "details")
    assert "specs/resnet50.yaml:20, 23-24" in details.find_element(By.CSS_SELECTOR, ".snippet .file").text
    marked = {int(e.get_attribute("data-line")): e.text for e in
              details.find_elements(By.CSS_SELECTOR, ".line.hl")}
    assert "conv2: {op: conv, out: *inner, k: 3, stride: $stride" in marked[23]
    assert "groups: $groups, bias: false}" in marked[24]
    assert "36,864" in browser.find_element(By.ID, "detail-facts").text  # its parameters
    # clicking the open block's frame closes it again
    label = browser.find_element(By.CSS_SELECTOR, 'g.vcluster[data-path="layer1"] > text')
    click_and_wait(browser, label)
    assert "layer1" in paths(browser) and not [p for p in paths(browser) if p.startswith("layer1.")]


def test_search_sort_and_the_table_reveal_nodes(browser, viewer):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    open_page(browser, viewer + "view?a=bundled/resnet50.yaml")
    before = renders(browser)
    browser.find_element(By.ID, "search").send_keys("layer3.2.conv2", Keys.ENTER)
    wait(browser, lambda d: renders(d) > before)
    assert "selected" in node(browser, "layer3.2.conv2").get_attribute("class")
    browser.find_element(By.CSS_SELECTOR, '#summary th[data-sort="params"]').click()
    first = browser.find_elements(By.CSS_SELECTOR, "#summary tbody tr")[:3]
    assert [r.get_attribute("data-row") for r in first][0] == "layer4"  # the largest block
    before = renders(browser)
    browser.find_element(By.CSS_SELECTOR, '#summary tr[data-row="layer2.1.conv3"]').click()
    wait(browser, lambda d: renders(d) > before)
    assert browser.find_element(By.ID, "detail-path").text == "layer2.1.conv3"


def test_params_re_resolve_the_spec_and_errors_show_as_the_cli_prints_them(browser, viewer, folder):
    from selenium.webdriver.common.by import By
    open_page(browser, viewer + f"view?a={folder.name}/child.yaml")
    field = browser.find_element(By.CSS_SELECTOR, '#params input[name="width"]')
    field.clear()
    field.send_keys("16")
    browser.find_element(By.ID, "apply").click()
    wait(browser, lambda d: "16" in d.find_element(By.CSS_SELECTOR, '#summary tr[data-row="stem"]').text)
    assert "--set width=16" in browser.find_element(By.ID, "subtitle").text
    field = browser.find_element(By.CSS_SELECTOR, '#params input[name="width"]')
    field.clear()
    field.send_keys("[1")
    browser.find_element(By.ID, "apply").click()
    errors = browser.find_element(By.ID, "errors")
    wait(browser, lambda d: errors.is_displayed())
    assert "error" in errors.text and "width=[1" in errors.text


# ---- two specs ---------------------------------------------------------------------------------

def test_the_index_links_two_specs_to_their_diff(browser, viewer, folder):
    from selenium.webdriver.common.by import By
    open_page(browser, viewer)
    assert browser.find_element(By.CSS_SELECTOR, f'tr[data-id="{folder.name}/child.yaml"]')  # --root
    browser.find_element(By.ID, "filter").send_keys("resnet50")
    shown = [r.get_attribute("data-id") for r in browser.find_elements(By.CSS_SELECTOR, "#index tbody tr")
             if r.is_displayed()]
    assert "bundled/resnet50.yaml" in shown and "bundled/alexnet.yaml" not in shown
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-id="bundled/resnet50.yaml"]')
    wait(browser, lambda d: row.find_elements(By.CSS_SELECTOR, "td.num")[0].text == "25.6 M")
    assert row.find_elements(By.CSS_SELECTOR, "td")[3].text == "resnet"  # the family
    browser.find_element(By.CSS_SELECTOR, 'input[name="a"][value="bundled/resnet50_v1.yaml"]').click()
    row.find_element(By.CSS_SELECTOR, 'input[name="b"]').click()
    browser.find_element(By.ID, "compare").click()
    wait(browser, lambda d: d.execute_script("return document.body.getAttribute('data-ready')"))
    assert browser.current_url.endswith("view?a=bundled%2Fresnet50_v1.yaml&b=bundled%2Fresnet50.yaml")


def test_the_diff_of_resnet50_v1_and_resnet50_shows_six_orange_convs(browser, viewer):
    from selenium.webdriver.common.by import By
    open_page(browser, viewer + "view?a=bundled/resnet50_v1.yaml&b=bundled/resnet50.yaml")
    orange = browser.execute_script("""
        return Array.from(document.querySelectorAll('g.vnode[data-op="conv"]'))
          .filter(g => (g.querySelector('path, polygon') || {}).getAttribute('fill') === '#fbe7c0')
          .map(g => g.getAttribute('data-path'));""")
    assert sorted(orange) == [f"layer{i}.0.conv{j}" for i in (2, 3, 4) for j in (1, 2)]
    change = browser.find_element(By.CSS_SELECTOR, '#changes li[data-row="layer3.0.conv1"]')
    assert "stride 2 → 1" in change.text
    change.click()
    a = browser.find_element(By.CSS_SELECTOR, "#details .side-a").text
    b = browser.find_element(By.CSS_SELECTOR, "#details .side-b").text
    assert "conv1: {stride: $stride}" in a and "resnet50_v1.yaml" in a
    assert "specs/resnet50.yaml:20" in b and "resnet50_v1" not in b
    assert "load unchanged, 0 change shape" in browser.find_element(By.ID, "weights-summary").text


# ---- live editing ------------------------------------------------------------------------------

def test_saving_a_watched_file_updates_the_page_keeping_blocks_open(browser, viewer, folder):
    from selenium.webdriver.common.by import By
    open_page(browser, viewer + f"view?a={folder.name}/child.yaml")
    click_and_wait(browser, node(browser, "body"))
    assert "body" in paths(browser, "g.vcluster")
    start = time.perf_counter()
    (folder / "base.yaml").write_text(BASE.replace("width: 8}", "width: 12}"))  # the extended file
    wait(browser, lambda d: "[1, 12]" in d.find_element(By.CSS_SELECTOR, '#summary tr[data-row="stem"]').text)
    seconds = time.perf_counter() - start
    print(f"page updated {seconds:.2f} s after the save")
    assert seconds < 3  # a second or less unloaded: polls every 0.3 s, the tiny spec analyses in 0.1 s
    assert "body" in paths(browser, "g.vcluster")  # still open
    (folder / "child.yaml").write_text(CHILD + "graph: {stem: {op: linear, out: nope}}\n")
    errors = browser.find_element(By.ID, "errors")
    wait(browser, lambda d: errors.is_displayed())
    assert "child.yaml:4:" in errors.text and "^" in errors.text
    (folder / "child.yaml").write_text(CHILD)
    wait(browser, lambda d: not errors.is_displayed())
    (folder / "base.yaml").write_text(BASE)


# ---- escaping ----------------------------------------------------------------------------------

def test_html_and_script_in_a_spec_are_shown_never_run(browser, viewer):
    from selenium.webdriver.common.by import By
    open_page(browser, viewer + "view?a=viewer_specs/hostile.yaml")
    title = browser.find_element(By.ID, "title").text
    assert title.startswith("<script>window.pwned = 'name'</script><img src=x")
    note = browser.find_element(By.CSS_SELECTOR, '#params input[name="note"]').get_attribute("value")
    assert note.startswith("<img src=x onerror=")
    for path in ("fc", "act"):
        node(browser, path).click()
    svg_text = browser.find_element(By.ID, "diagram").text
    assert "<b onmouseover=" in svg_text  # the output's name, drawn as text
    node(browser, "fc").click()
    assert "# <img src=x onerror=" in browser.find_element(By.ID, "details").text
    assert no_script_ran(browser)  # each page load starts a new window: checked on each page
    open_page(browser, viewer + "view?a=viewer_specs/hostile_errors.yaml")
    errors = browser.find_element(By.ID, "errors").text
    assert "node name '<img src=x onerror=" in errors and "<script>window.pwned='node-script'" in errors
    assert no_script_ran(browser)
    open_page(browser, viewer)  # the index shows the header comments
    assert "<script>" in browser.find_element(By.CSS_SELECTOR, 'tr[data-id="viewer_specs/hostile.yaml"]').text
    assert no_script_ran(browser)


# ---- the static export -------------------------------------------------------------------------

def test_the_exported_site_works_from_file_urls(browser, folder, tmp_path):
    from selenium.webdriver.common.by import By

    from engine.views.viewer.export import export_site
    workspace = Workspace(Catalog([folder, SPECS]))
    ids = [f"{folder.name}/child.yaml", "viewer_specs/hostile.yaml"]
    export_site(workspace, ids, True, tmp_path / "site")
    open_page(browser, (tmp_path / "site" / "index.html").as_uri())
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#index a")]
    assert len(links) == 3 and all(link.startswith("file://") for link in links)
    open_page(browser, links[0])
    click_and_wait(browser, node(browser, "body"))
    assert [p for p in paths(browser) if p.startswith("body.")] == ["body.0", "body.1"]
    click_and_wait(browser, node(browser, "body.0"))
    assert "body.0.fc" in paths(browser)
    open_page(browser, links[1])
    assert browser.find_element(By.ID, "title").text.startswith("<script>")
    assert no_script_ran(browser)
    open_page(browser, links[2])  # the diff page
    assert browser.find_elements(By.CSS_SELECTOR, "#changes li")
    assert no_script_ran(browser)
