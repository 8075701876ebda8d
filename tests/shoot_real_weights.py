"""Screenshots of the app with the SHIPPED weights (the browser tests use tiny test weights).

    python tests/shoot_real_weights.py            # writes results/screenshots/{generate,compare}_real_weights.png

Steps: 1. start `python app.py` on a free port with the bundled weights; 2. in Chromium (1440×900), wait for the
"What the model knows" line (printed: seconds after opening the page), click Generate
on the landing example, wait until it is generated, take two shots 1 s apart and check that the player moved;
3. on the Compare tab compare "a person walks forward" for every shipped generator; 4. stop the app.
Not collected by pytest (no test_ prefix): it needs the real bundle and about a minute of CPU.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "results" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = {**os.environ, "PORT": str(port)}
    env.pop("KMM_WEIGHTS", None)
    env.pop("KMM_MODEL_REPO", None)
    app = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(240):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            t0 = time.monotonic()
            page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
            page.get_by_text("What the model knows").wait_for(timeout=30_000)   # before the data folders load
            print(f"'What the model knows' shown {time.monotonic() - t0:.1f} s after opening the page")
            page.locator("#generate").click()
            page.locator("#status", has_text="Generated").wait_for(timeout=180_000)
            frame = page.locator("#motion-player iframe").element_handle().content_frame()
            frame.wait_for_function("document.body.dataset.frame !== undefined")
            canvas = frame.locator("canvas").first
            a = canvas.screenshot()
            page.wait_for_timeout(1000)
            b = canvas.screenshot()
            print("player moved between shots 1 s apart:", a != b)
            page.screenshot(path=str(SHOTS / "generate_real_weights.png"), full_page=True)
            page.get_by_role("tab", name="Compare").click()
            caption = page.locator("#compare-caption input")
            caption.fill("a person walks forward")
            caption.press("Enter")
            page.locator("#compare").click()
            page.get_by_text("foot_skating").first.wait_for(timeout=300_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(SHOTS / "compare_real_weights.png"), full_page=True)
            browser.close()
            return 0 if a != b else 1
    finally:
        app.terminate()
        app.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
