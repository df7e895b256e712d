"""`engine view`: time from the page request to the first diagram shown, in headless Chromium.

The viewer's server runs in this process, as `engine view SPEC` runs it: the spec is analysed
before the address is printed, so a page request costs the page (HTML with the diagram's SVG
and the nodes' data inside) and the browser's work. Each round loads the page afresh and reads,
from the page itself, milliseconds since the navigation started (performance.now()):
- first diagram: the diagram's SVG is in the page (`window.viewerFirstDiagram`);
- interactive: the summary table, the params form and every handler are in place too
  (`window.viewerInteractive`).
It also times one cold request: a new server whose first request analyses the spec.
No figure is asserted. Usage: python benchmarks/bench_viewer.py [--spec vit_l16] [--rounds 7]
[--screenshot docs/images/viewer.png] (the screenshot: resnet50 with layer1.0 open and conv2
selected, as the README shows it). Needs chromium, chromedriver and selenium.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import threading
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from engine.views.viewer import Catalog, Workspace
from engine.views.viewer.server import ViewerServer


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")),
                            options=options)


def start(warm: str | None) -> ViewerServer:
    workspace = Workspace(Catalog([]))
    if warm:
        workspace.page(warm)  # what `engine view SPEC` does before printing the address
    server = ViewerServer(workspace)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def load(driver, url: str) -> tuple[float, float, float]:
    """(first diagram, interactive, wall) in milliseconds for one page load."""
    start = time.perf_counter()
    driver.get(url)
    WebDriverWait(driver, 60, poll_frequency=0.01).until(
        lambda d: d.execute_script("return window.viewerInteractive !== undefined"))
    wall = (time.perf_counter() - start) * 1000
    first, ready = driver.execute_script("return [window.viewerFirstDiagram, window.viewerInteractive]")
    return first, ready, wall


def screenshot(driver, path: str) -> None:
    server = start("bundled/resnet50.yaml")
    driver.get(server.url + "view?a=bundled/resnet50.yaml")
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: d.execute_script("return window.viewerInteractive !== undefined"))
    for target in ("layer1", "layer1.0"):
        before = driver.execute_script("return window.viewerRenders")
        driver.find_element(By.CSS_SELECTOR, f'g.vnode[data-path="{target}"]').click()
        wait.until(lambda d, n=before: d.execute_script("return window.viewerRenders") > n)
    driver.set_window_size(1400, 1050)
    driver.execute_script("""  // the opened block at the top, the details panel from its start
        document.querySelector('g.vcluster[data-path="layer1"]').scrollIntoView({block: "start"});
        document.querySelector('.canvas').scrollTop -= 150;
        document.querySelector('.panel').scrollTop = 0;""")
    driver.find_element(By.CSS_SELECTOR, 'g.vnode[data-path="layer1.0.conv2"]').click()
    # the pointer off the diagram: the panel shows the selected node, not the one under it
    ActionChains(driver).move_to_element(driver.find_element(By.ID, "title")).perform()
    driver.save_screenshot(path)
    server.shutdown()
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", default="vit_l16")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--screenshot", metavar="PNG")
    args = parser.parse_args()
    spec_id = f"bundled/{args.spec}.yaml"
    driver = browser()
    try:
        cold = start(None)
        first, ready, wall = load(driver, cold.url + f"view?a={spec_id}")
        cold.shutdown()
        print(f"{args.spec}: cold server (the first request analyses the spec): first diagram "
              f"{first:.0f} ms, interactive {ready:.0f} ms, wall {wall:.0f} ms")
        server = start(spec_id)
        load(driver, server.url + f"view?a={spec_id}")  # the browser's own first-load costs
        runs = [load(driver, server.url + f"view?a={spec_id}&round={i}") for i in range(args.rounds)]
        server.shutdown()
        for name, values in zip(("first diagram", "interactive", "wall (selenium)"), zip(*runs)):
            print(f"{args.spec}: {name:<16} median {statistics.median(values):6.0f} ms  "
                  f"(min {min(values):.0f}, max {max(values):.0f}, {len(values)} page loads)")
        if args.screenshot:
            screenshot(driver, args.screenshot)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
