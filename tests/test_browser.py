"""The app in a real browser (Playwright + Debian's Chromium, headless), judged by what a person sees:
the motion moves by itself after the first click, scrubbing changes the pose, the body is large (skeleton player
and mesh viewer for a 60-s timeline, each Compare panel), errors keep the page, the phone layout does not overlap.
Screenshots of each state go to results/screenshots/.

Needs `apt-get install chromium` and `pip install playwright` (never `playwright install`: we use the
system browser). Skipped, with the reason, when either is missing.
"""
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = os.environ.get("KMM_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "results" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
Image = pytest.importorskip("PIL.Image")
if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)

from kmm.viz.player import LEFT_COLOR, RIGHT_COLOR, SPINE_COLOR  # noqa: E402

APP_ENV = {"KMM_MP4_MAX_SECONDS": "2"}  # mp4 only for the 1 s motion of test_mesh_view (~0.2 s/frame)
BODY_RGB = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in (LEFT_COLOR, RIGHT_COLOR, SPINE_COLOR)])


@pytest.fixture(scope="module")
def server(app_server):
    return app_server


@pytest.fixture(scope="module")
def browser(server):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


def _open(browser, server, width=1440, height=900, dark=False):
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.goto(server + ("?__theme=dark" if dark else ""))
    page.locator("#prompt input, #prompt textarea").first.wait_for()
    return page


@pytest.fixture(scope="module")
def page(browser, server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = _open(browser, server)
    yield page
    page.context.close()


def _prompt(page):
    return page.locator("#prompt input, #prompt textarea").first


def _wait_idle(page):
    """No run going: Generate is enabled again (it is disabled from the click until the last chained step)."""
    page.locator("#generate:not([disabled])").wait_for()


def _wait_status(page, text: str, timeout: float = 90_000):
    """Wait until the status line contains `text`; on timeout, fail with what the status line says instead."""
    try:
        page.locator("#status", has_text=text).wait_for(timeout=timeout)
    except sync_api.TimeoutError:
        pytest.fail(f"status never said {text!r}; it says {page.locator('#status').inner_text()!r}")


def _wait_generated(page, text="Generated"):
    _wait_status(page, text)
    _wait_idle(page)


def _player(page, elem="#motion-player"):
    """(iframe element, its Frame) once the player page has drawn."""
    iframe = page.locator(f"{elem} iframe")
    iframe.wait_for()
    frame = iframe.element_handle().content_frame()
    frame.wait_for_function("document.body.dataset.frame !== undefined")
    return iframe, frame


def _pixels(locator) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB")).astype(int)


def _body_box(img: np.ndarray):
    """Bounding box (x0, y0, x1, y1) of the pixels drawn in a body colour, or None."""
    dist = np.abs(img[:, :, None, :] - BODY_RGB[None, None]).sum(-1).min(-1)      # (H, W)
    ys, xs = np.nonzero(dist < 60)
    if len(xs) < 30:
        return None
    return xs.min(), ys.min(), xs.max(), ys.max()


def _mesh_body_box(img: np.ndarray):
    """Bounding box of the mannequin in a mesh-viewer screenshot: its warm wood colour (red well above blue);
    the floor and the background are grey or bluish."""
    ys, xs = np.nonzero((img[..., 0] - img[..., 2]) > 40)
    if len(xs) < 30:
        return None
    return xs.min(), ys.min(), xs.max(), ys.max()


def _until_mesh_drawn(canvas, timeout_s: float = 120.0):
    """(png bytes, pixels, body box) of the first screenshot of the mesh viewer that shows the mannequin."""
    deadline = time.monotonic() + timeout_s
    while True:
        shot = canvas.screenshot()
        img = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)
        body = _mesh_body_box(img)
        if body is not None or time.monotonic() > deadline:
            return shot, img, body
        canvas.page.wait_for_timeout(1000)


def _canvas(frame):
    return frame.locator("canvas")


def _seek(frame, f):
    frame.evaluate(f"window.kmmPlayer.seek({int(f)})")
    frame.wait_for_function(f"document.body.dataset.frame === '{int(f)}'")


def _set_seconds(page, row: int, seconds: float):
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


def test_first_click_plays_the_landing_example(page):
    """No Split needed: the landing prompt generates on the first click, and the body moves by itself."""
    assert page.locator("#seg-text-0 textarea, #seg-text-0 input").first.input_value()   # rows already filled
    page.screenshot(path=str(SHOTS / "landing.png"), full_page=True)
    page.locator("#generate").click()
    _wait_generated(page)
    iframe, frame = _player(page)
    canvas = _canvas(frame)
    a = _pixels(canvas)
    page.wait_for_timeout(1000)
    b = _pixels(canvas)
    assert frame.evaluate("document.body.dataset.playing") == "1"
    assert np.abs(a - b).sum(-1).astype(bool).mean() > 0.001, "the viewer did not change in 1 s"
    assert _body_box(a) is not None and _body_box(b) is not None
    page.screenshot(path=str(SHOTS / "generate_first_click.png"), full_page=True)
    # the segment playing is named under the viewer
    assert frame.locator("#seg").inner_text().startswith("#")


def test_scrub_gives_two_poses(page):
    iframe, frame = _player(page)
    n = frame.evaluate("window.kmmPlayer.frames")
    _seek(frame, 5)
    first = _pixels(_canvas(frame))
    _seek(frame, n - 5)
    second = _pixels(_canvas(frame))
    assert frame.evaluate("document.body.dataset.playing") == "0"          # scrubbing pauses
    assert np.abs(first - second).sum(-1).astype(bool).mean() > 0.001
    frame.locator("#play").click()                                          # and play resumes
    frame.wait_for_function("document.body.dataset.playing === '1'")
    iframe.screenshot(path=str(SHOTS / "player_scrubbed.png"))


def test_stale_prompt_and_enter_generates(page):
    """Editing the prompt and pressing Enter generates what the prompt says now (rows re-split)."""
    _prompt(page).fill("a person walks forward. a person jumps")
    _prompt(page).press("Enter")
    _wait_generated(page, "2 segments")
    assert page.locator("#seg-text-1 textarea, #seg-text-1 input").first.input_value() == "a person jumps"
    assert not page.locator("#seg-text-2").is_visible()
    assert "a person jumps" in page.locator("#timeline").inner_text()


def test_seconds_untick_auto_and_show_the_grid(page):
    assert page.locator("#seg-auto-0 input[type=checkbox]").is_checked()
    _set_seconds(page, 0, 2.5)
    page.locator("#seg-note-0", has_text="2.4 s").wait_for()               # 2.5 s → 12 tokens of 4 frames
    assert not page.locator("#seg-auto-0 input[type=checkbox]").is_checked()
    _set_seconds(page, 1, 3)
    page.locator("#generate").click()
    _wait_generated(page)
    assert "108 frames" in page.locator("#status").inner_text()            # 48 + 60 frames
    assert "0.0–2.4 s" in page.locator("#timeline").inner_text()


def test_downloads_and_regenerate_writes_back(page, tmp_path):
    npz = _download(page, "npz-file", tmp_path)
    assert npz.name == "kmm_seed0_2seg_108frames.npz"
    _wait_idle(page)                                   # the previous test's run has fully finished
    page.locator("#regen-box").get_by_text("Regenerate one segment").click()
    for elem_id, value in (("regen-k", "2"), ("regen-seed", "5")):
        _fill_until_held(page.locator(f"#{elem_id} input"), value)
    _fill_until_held(page.locator("#regen-text textarea, #regen-text input").first, "a person waves")
    page.locator("#regenerate").click()
    page.locator("#npz-file", has_text="kmm_seed0-edit2s5_2seg_108frames").wait_for()
    assert page.locator("#seg-text-1 textarea, #seg-text-1 input").first.input_value() == "a person waves"
    with np.load(_download(page, "npz-file", tmp_path), allow_pickle=False) as data:
        assert int(data["seed"]) == 0 and list(data["edit_seeds"]) == [5] and list(data["edit_segments"]) == [2]
        assert list(data["segment_texts"]) == ["a person walks forward", "a person waves"]
    page.screenshot(path=str(SHOTS / "regenerated.png"), full_page=True)


def _fill_until_held(box, value: str, tries: int = 5):
    """Type into a box until it keeps the value (a box that has just been mounted can drop the first fill)."""
    box.wait_for(state="visible")
    for _ in range(tries):
        box.fill(value)
        box.press("Tab")
        if box.input_value() == value:
            return
        box.page.wait_for_timeout(300)
    assert box.input_value() == value, f"the box kept {box.input_value()!r}, not {value!r}"


def _advanced_seed(page):
    """The Seed box in the 'Advanced' accordion, opened if it is closed (a click on an open accordion closes it,
    and gradio mounts the accordion's content only once it is open)."""
    seed = page.locator("#seed input")
    if not seed.is_visible():
        page.locator(".label-wrap", has_text="Advanced").click()
    seed.wait_for(state="visible")
    return seed


def _set_seed(page, value: str):
    _fill_until_held(_advanced_seed(page), value)


def test_bad_seed_keeps_the_motion(page):
    """Seed -1: a message naming the field, and the motion on screen (player and download) stays."""
    _wait_idle(page)                      # nothing from the previous test may still update the page
    _, frame = _player(page)
    before = page.locator("#motion-player iframe").get_attribute("srcdoc")
    page.locator("#npz-file", has_text="108frames").wait_for()
    _set_seed(page, "-1")
    page.locator("#generate").click()
    _wait_status(page, "Seed must be a whole number between 0 and 2147483647, got -1")
    _wait_idle(page)
    assert page.locator("#motion-player iframe").get_attribute("srcdoc") == before   # the motion stays
    assert page.locator("#npz-file", has_text="108frames").count() == 1
    assert page.locator(".error").count() == 0 or not page.locator(".error").first.is_visible()
    page.screenshot(path=str(SHOTS / "bad_seed_kept.png"), full_page=True)
    _set_seed(page, "0")


def test_wordless_prompt_gets_a_message(page):
    _prompt(page).fill("🙂🙂 !!")
    _prompt(page).press("Enter")
    page.locator("#status", has_text="has no words").wait_for()


def test_generate_is_disabled_while_running(page):
    _prompt(page).fill("a person walks forward")
    page.evaluate("""() => {            // record every state of the button, however short the run
        const b = document.querySelector('#generate');
        window.kmmDisabled = [];
        new MutationObserver(() => window.kmmDisabled.push(b.disabled)).observe(b, {attributes: true});
    }""")
    page.locator("#generate").click()
    _wait_generated(page, "1 segments")
    states = page.evaluate("window.kmmDisabled")
    assert True in states and states[-1] is False, states


def test_body_is_large_in_a_60_second_timeline(page):
    _prompt(page).fill(". ".join(f"a person walks forward {k}" for k in range(8)))
    page.locator("#split").click()
    page.locator("#seg-text-7").wait_for(state="visible")
    for row in range(8):
        _set_seconds(page, row, 7.6)
    page.locator("#generate").click()
    _wait_generated(page, "8 segments")
    assert "1216 frames" in page.locator("#status").inner_text()           # 8 × 7.6 s = 60.8 s
    iframe, frame = _player(page)
    canvas = _canvas(frame)
    height = canvas.bounding_box()["height"]
    n = frame.evaluate("window.kmmPlayer.frames")
    seen = []
    for f in np.linspace(0, n - 1, 5).astype(int):
        _seek(frame, f)
        box = _body_box(_pixels(canvas))
        js = frame.evaluate("JSON.parse(document.body.dataset.bbox)[0].body")
        seen.append((f, box, js, iframe.screenshot()))
    smallest = min(seen, key=lambda item: -1 if item[1] is None else item[1][3] - item[1][1])
    (SHOTS / "timeline_60s_body.png").write_bytes(smallest[3])              # the frame with the smallest body
    for f, box, js, _ in seen:
        assert box is not None, f"no body drawn at frame {f}"
        assert box[3] - box[1] >= height / 4, f"body {box[3] - box[1]} px high in a {height} px viewer at frame {f}"
        assert js[3] - js[1] >= height / 4
    page.screenshot(path=str(SHOTS / "timeline_60s.png"), full_page=True)
    # the mesh view of the motion on screen (built when the view switches, no new generation): the viewer's
    # camera stays put, so its copy of the motion keeps the body in the middle (kmm.viz.mesh follow mode)
    page.locator("#view").get_by_text("mesh", exact=True).click()
    page.locator("#mesh-status", has_text="Mesh: animated .glb, 1216 frames (60.8 s)").wait_for(timeout=300_000)
    link = page.locator("#mesh-viewer [data-testid=model3d-download-link]")
    link.wait_for()
    assert link.get_attribute("href").split("?")[0].endswith("_viewer.glb")
    canvas = page.locator("#mesh-viewer canvas")
    page.locator("#mesh-panel").scroll_into_view_if_needed()
    shot, img, body = _until_mesh_drawn(canvas)               # the 1.7 MB model loads and starts playing
    (SHOTS / "mesh_60s_body.png").write_bytes(shot)
    for k in range(2):                                         # two moments of the walk, >= 1 s apart
        if k:
            page.wait_for_timeout(1000)
            img = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")).astype(int)
            body = _mesh_body_box(img)
        assert body is not None, "no mannequin drawn in the mesh viewer"
        # the body's larger extent, at least a fifth of the viewer: the tiny test model sometimes crouches or lies
        # down (a crouch measured 106 × 114 px in 479, a standing body ~170 px high); a camera that framed the whole
        # 60-s path instead of following the body would draw it much smaller
        size = max(body[3] - body[1], body[2] - body[0])
        assert size >= img.shape[0] / 5, f"mesh body {body[2] - body[0]} × {body[3] - body[1]} px in {img.shape[0]} px"


def test_mesh_view(page, tmp_path):
    pygltflib = pytest.importorskip("pygltflib")
    _prompt(page).fill("a person jumps")
    page.locator("#split").click()
    page.locator("#seg-text-1").wait_for(state="hidden")
    _set_seconds(page, 0, 1)
    page.locator("#mesh-panel").wait_for(state="visible")     # mesh view: left on by the 60-s test
    page.locator("#generate").click()                       # skeleton first, then the chained mesh step
    page.locator("#status", has_text="Generated 20 frames").wait_for()
    page.locator("#mesh-status", has_text="Mesh: animated .glb, 20 frames (1.0 s) · mp4 rendered").wait_for(
        timeout=300_000)
    link = page.locator("#mesh-viewer [data-testid=model3d-download-link]")
    href = link.get_attribute("href")
    assert href and href.split("?")[0].endswith("kmm_seed0_1seg_20frames_viewer.glb")
    glb = tmp_path / "viewer.glb"
    glb.write_bytes(page.request.get(href).body())
    gltf = pygltflib.GLTF2().load(str(glb))
    assert len(gltf.animations) == 1 and len(gltf.skins) == 1 and len(gltf.meshes) == 2   # body + floor
    download = _download(page, "glb-file", tmp_path)              # the motion as it is: body only
    assert download.name == "kmm_seed0_1seg_20frames.glb" and len(pygltflib.GLTF2().load(str(download)).meshes) == 1
    assert page.locator("#mesh-video video").get_attribute("src")
    page.locator("#mesh-viewer canvas").wait_for()
    page.wait_for_timeout(1500)                               # let the viewer draw a few frames
    page.locator("#mesh-panel").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "mesh_view.png"), full_page=True)
    page.get_by_text("About / set-up").click()
    page.locator("#smpl-status", has_text="KMM_SMPL_DIR").wait_for()
    page.locator("#view").get_by_text("fast (skeleton)", exact=True).click()


def test_example_click_generates(page):
    page.locator("#examples").get_by_text("Timeline: walk, jump, sit").click()
    _wait_generated(page, "3 segments")
    assert page.locator("#seg-text-1 textarea, #seg-text-1 input").first.input_value() == "a person jumps up in place"
    seed = json.loads((ROOT / "examples" / "06_walk_jump_sit.json").read_text())["seed"]
    assert f"seed {seed}" in page.locator("#status").inner_text()           # the example's seed
    assert not page.locator("#seg-auto-0 input[type=checkbox]").is_checked()
    assert "0.0–4.0 s" in page.locator("#timeline").inner_text()
    page.screenshot(path=str(SHOTS / "example_timeline.png"), full_page=True)


def test_compare_tab_plays_in_sync_and_large(page):
    for button in page.locator(".toast-close").all():
        button.click()
    page.get_by_role("tab", name="Compare").click()
    caption = page.locator("#compare-caption input")
    caption.fill("walk")                      # a held-out test caption of the mini data: ground truth shown
    page.get_by_role("option").filter(has_text="walk").first.click()
    page.locator("#compare").click()
    iframe, frame = _player(page, "#compare-player")
    page.get_by_text("foot_skating").first.wait_for()
    assert page.get_by_text("ground truth").count() > 0
    boxes = frame.evaluate("JSON.parse(document.body.dataset.bbox)")
    assert len(boxes) == 6                                                    # ground truth + 5 generators
    canvas = _canvas(frame)
    a = _pixels(canvas)
    page.wait_for_timeout(1000)
    b = _pixels(canvas)
    assert np.abs(a - b).sum(-1).astype(bool).mean() > 0.001
    scale = a.shape[0] / canvas.bounding_box()["height"]
    for k, item in enumerate(boxes):
        x, y, w, h = (int(v * scale) for v in item["panel"])
        box = _body_box(b[y:y + h, x:x + w])
        assert box is not None and box[3] - box[1] >= h / 4, f"panel {k}: body too small ({box}, panel {h} px)"
    page.screenshot(path=str(SHOTS / "compare.png"), full_page=True)
    page.get_by_role("tab", name="Generate").click()


def test_api_tab(page):
    page.get_by_role("tab", name="API").click()
    page.get_by_text("api_name=\"/generate\"").first.wait_for()
    page.screenshot(path=str(SHOTS / "api.png"), full_page=True)
    page.get_by_role("tab", name="Generate").click()


def _overlaps(boxes: dict) -> list:
    names = list(boxes)
    bad = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            p, q = boxes[a], boxes[b]
            if (min(p["x"] + p["width"], q["x"] + q["width"]) - max(p["x"], q["x"]) > 1
                    and min(p["y"] + p["height"], q["y"] + q["height"]) - max(p["y"], q["y"]) > 1):
                bad.append((a, b))
    return bad


def test_phone_layout_does_not_overlap(browser, server):
    page = _open(browser, server, 390, 844)
    try:
        page.locator("#generate").click()
        _wait_generated(page)
        _player(page)
        ids = ["#prompt", "#split", "#seg-text-0", "#seg-sec-0", "#seg-auto-0", "#seg-note-0", "#seg-text-1",
               "#view", "#generate", "#status", "#motion-player iframe", "#timeline", "#understood", "#npz-file"]
        boxes = {i: page.locator(i).first.bounding_box() for i in ids}
        assert all(boxes.values()), boxes
        assert _overlaps(boxes) == []
        assert all(b["x"] >= 0 and b["x"] + b["width"] <= 391 for b in boxes.values())   # nothing off-screen
        page.screenshot(path=str(SHOTS / "phone.png"), full_page=True)
    finally:
        page.context.close()


def _contrast(fg: str, bg: str) -> float:
    def lum(css):
        rgb = [int(v) / 255 for v in css[css.index("(") + 1:css.index(")")].split(",")[:3]]
        rgb = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]

    hi, lo = sorted([lum(fg), lum(bg)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_64_segment_timeline_readable_in_dark_mode(browser, server):
    page = _open(browser, server, dark=True)
    try:
        _prompt(page).fill(". ".join(f"a person walks {k}" for k in range(64)))
        page.locator("#generate").click()
        _wait_generated(page, "64 segments")
        chip = page.locator("#timeline .kmm-seg").nth(40)
        style = chip.evaluate("e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]")
        assert _contrast(*style) >= 4.5, style
        assert chip.bounding_box()["width"] >= 100                         # labels have room
        strip = page.locator("#timeline .kmm-timeline")
        assert strip.evaluate("e => e.scrollWidth > e.clientWidth")        # the strip scrolls sideways
        iframe, frame = _player(page)
        box = _body_box(_pixels(_canvas(frame)))
        assert box is not None and box[3] - box[1] >= _canvas(frame).bounding_box()["height"] / 4
        top = page.locator("#status").bounding_box()
        bottom = page.locator("#timeline").bounding_box()
        height = bottom["y"] + bottom["height"] - top["y"] + 20
        page.screenshot(path=str(SHOTS / "timeline_64_dark.png"), full_page=True,
                        clip={"x": 0, "y": top["y"] - 10, "width": 1440, "height": height})
    finally:
        page.context.close()
