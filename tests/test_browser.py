"""The app in a real browser (Playwright + Debian's Chromium, headless): split, set lengths, generate,
download both files; the 'mesh' view (animated .glb in the Model3D viewer + a short mp4); screenshots of
each tab go to results/screenshots/.

Needs `apt-get install chromium` and `pip install playwright` (never `playwright install`: we use the
system browser). Skipped, with the reason, when either is missing.
"""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = os.environ.get("KMM_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[1] / "results" / "screenshots"
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)


APP_ENV = {"KMM_MP4_MAX_SECONDS": "2"}  # mp4 only for the 1 s motion of test_mesh_view (~0.2 s/frame)


@pytest.fixture(scope="module")
def server(app_server):
    return app_server


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(server)
        page.locator("#prompt textarea").wait_for()
        yield page
        browser.close()


def _set_seconds(page, row: int, seconds: float):
    page.locator(f"#seg-auto-{row} input[type=checkbox]").uncheck()
    box = page.locator(f"#seg-sec-{row} input[type=number]")
    box.fill(str(seconds))
    box.press("Enter")
    box.blur()


def _download(page, elem_id: str, tmp_path: Path) -> Path:
    link = page.locator(f"#{elem_id} a").first
    with page.expect_download() as info:
        link.click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    return target


def test_generate_tab(page, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#prompt textarea").fill("a person walks forward, then sits down")
    page.locator("#split").click()
    page.locator("#seg-text-1 textarea").wait_for(state="visible")
    assert page.locator("#seg-text-0 textarea").input_value() == "a person walks forward"
    assert page.locator("#seg-text-1 textarea").input_value() == "sits down"
    assert not page.locator("#seg-text-2").is_visible()
    _set_seconds(page, 0, 3)
    _set_seconds(page, 1, 2)
    page.locator("#generate").click()
    page.locator("#status", has_text="Generated").wait_for()
    page.locator("#motion-plot .js-plotly-plot").wait_for()
    assert "100 frames" in page.locator("#status").inner_text()
    assert "0.0–3.0 s" in page.locator("#timeline").inner_text()
    npz = _download(page, "npz-file", tmp_path)
    bvh = _download(page, "bvh-file", tmp_path)
    assert npz.name == "kmm_0_100frames.npz" and bvh.name == "kmm_0_100frames.bvh"
    with np.load(npz, allow_pickle=False) as data:
        assert data["joints"].shape == (100, 22, 3)
    assert "Frames: 100" in bvh.read_text()
    page.screenshot(path=str(SHOTS / "generate.png"), full_page=True)

    # regenerate segment #2 with seed 5: the files are renamed after the new seed, same length
    page.get_by_text("Regenerate one segment").click()
    for elem_id, value in (("regen-k", "2"), ("regen-seed", "5")):
        box = page.locator(f"#{elem_id} input")
        box.fill(value)
        box.press("Enter")
        box.blur()
    page.locator("#regenerate").click()
    page.locator("#npz-file", has_text="kmm_5_100frames").wait_for()   # gradio shows stem and ".npz" apart
    with np.load(_download(page, "npz-file", tmp_path), allow_pickle=False) as data:
        assert data["joints"].shape == (100, 22, 3) and int(data["seed"]) == 5


def test_mesh_view(page, tmp_path):
    pygltflib = pytest.importorskip("pygltflib")
    page.locator("#prompt textarea").fill("a person jumps")
    page.locator("#split").click()
    page.locator("#seg-text-1").wait_for(state="hidden")
    _set_seconds(page, 0, 1)
    page.locator("#view").get_by_text("mesh", exact=True).click()
    page.locator("#mesh-panel").wait_for(state="visible")
    assert "KMM_SMPL_DIR" in page.locator("#smpl-status").inner_text()
    # switching shows the mesh of the motion already on screen (100 frames, too long for an mp4 here)
    page.locator("#mesh-status", has_text="Mesh: animated .glb, 100 frames").wait_for()
    assert "mp4 skipped" in page.locator("#mesh-status").inner_text()
    page.locator("#generate").click()                       # skeleton first, then the chained mesh step
    page.locator("#status", has_text="Generated 20 frames").wait_for()
    page.locator("#mesh-status", has_text="rendering the mp4 (20 frames").wait_for()   # progress is shown
    page.locator("#mesh-status", has_text="Mesh: animated .glb, 20 frames (1.0 s) · mp4 rendered").wait_for(
        timeout=120_000)
    link = page.locator("#mesh-viewer [data-testid=model3d-download-link]")
    href = link.get_attribute("href")
    assert href and href.split("?")[0].endswith("kmm_0_20frames.glb")
    glb = tmp_path / "viewer.glb"
    glb.write_bytes(page.request.get(href).body())
    gltf = pygltflib.GLTF2().load(str(glb))
    assert len(gltf.animations) == 1 and len(gltf.skins) == 1
    assert _download(page, "glb-file", tmp_path).name == "kmm_0_20frames.glb"
    assert page.locator("#mesh-video video").get_attribute("src")
    page.locator("#mesh-viewer canvas").wait_for()
    page.wait_for_timeout(1500)                               # let the viewer draw a few frames
    page.locator("#mesh-panel").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "mesh_view.png"), full_page=True)


def test_bad_input_shows_message(page):
    page.locator("#prompt textarea").fill("   ")
    page.locator("#split").click()
    page.locator("#status", has_text="The prompt is empty").wait_for()


def _dismiss_toasts(page):
    for button in page.locator(".toast-close").all():
        button.click()


def test_compare_tab(page):
    _dismiss_toasts(page)
    page.get_by_role("tab", name="Compare").click()
    caption = page.locator("#compare-caption input")
    caption.fill("walk")                      # a held-out test caption of the mini data: ground truth shown
    page.get_by_role("option", name="walk", exact=True).click()
    page.locator("#compare").click()
    page.locator("#compare-plot .js-plotly-plot").wait_for()
    page.get_by_text("foot_skating").first.wait_for()
    assert page.get_by_text("ground truth").count() > 0
    page.screenshot(path=str(SHOTS / "compare.png"), full_page=True)


def test_api_tab(page):
    page.get_by_role("tab", name="API").click()
    page.get_by_text("api_name=\"/generate\"").first.wait_for()
    page.screenshot(path=str(SHOTS / "api.png"), full_page=True)
