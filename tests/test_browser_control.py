"""The control panel in a real browser (issue #19): pin a frame, add two waypoints, generate with control, and
the result reaches them (the measured errors the panel prints), with the path and pin drawn on the floor view.
Same set-up and skips as tests/test_browser.py (system Chromium via Playwright, the tiny bundle)."""
import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("KMM_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[1] / "results" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)

APP_ENV = {"KMM_MP4_MAX_SECONDS": "0"}


@pytest.fixture(scope="module")
def page(app_server):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        page.set_default_timeout(90_000)
        page.goto(app_server)
        page.locator("#prompt input, #prompt textarea").first.wait_for()
        yield page
        browser.close()


def _fill(page, elem_id: str, value: float):
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def test_pin_two_waypoints_generate_reaches_them(page):
    prompt = page.locator("#prompt input, #prompt textarea").first
    prompt.fill("a person walks forward")
    page.locator("#split").click()
    _fill(page, "seg-sec-0", 4)
    page.locator("#generate").click()
    page.locator("#status", has_text="Generated").wait_for()
    page.locator("#generate:not([disabled])").wait_for()

    page.locator("#control-box").get_by_text("Control: pin poses").click()
    _fill(page, "pin-time", 1.0)
    page.locator("#pin-frame").click()
    page.locator("#pins", has_text="1.00 s").wait_for()
    for t, x, z in ((2.0, 0.3, 0.8), (4.0, 0.8, 1.6)):
        _fill(page, "wp-t", t)
        _fill(page, "wp-x", x)
        _fill(page, "wp-z", z)
        n = page.locator("#floor-view .floor-waypoint").count()
        page.locator("#add-waypoint").click()
        page.wait_for_function(f"document.querySelectorAll('#floor-view .floor-waypoint').length === {n + 1}")
    assert page.locator("#floor-view .floor-pin").count() == 1

    page.locator("#generate-control").click()
    report = page.locator("#control-report", has_text="waypoint")
    report.wait_for()
    text = report.inner_text()
    away = [float(v) for v in re.findall(r"pelvis ([\d.]+) m away", text)]
    pose = [float(v) for v in re.findall(r"mean joint error ([\d.]+) cm", text)]
    assert len(away) == 2 and max(away) < 0.2, text
    assert len(pose) == 1 and pose[0] < 5.0, text
    assert page.locator("#floor-view .floor-path").count() == 1
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#control-box").screenshot(path=str(SHOTS / "control.png"))
