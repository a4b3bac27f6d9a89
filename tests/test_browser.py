"""The capture and live pages in a real browser: Debian's headless Chromium with its fake camera,
driven by Playwright. Set SIIRTO_SCREENSHOTS=DIR to keep the screenshots (the README's come from here)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from siirto.capture.server import CaptureApp, serve
from siirto.cli import main

from conftest import TINY, make_imagefolder

CHROMIUM = os.environ.get("SIIRTO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--no-sandbox", "--disable-gpu",
    "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `apt-get install chromium` (make test does) or set SIIRTO_CHROMIUM")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    yield b
    b.close()


def _screenshot(page, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SIIRTO_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path))
    return path


def test_capture_page_with_fake_camera(browser, tmp_path):
    out = tmp_path / "data" / "rps"
    server = serve(CaptureApp(["rock", "paper", "scissors"], out), port=0)
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 640})
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        page.wait_for_selector("body[data-camera=ready]", timeout=20_000)
        page.keyboard.press("1")                       # rock
        for _ in range(2):
            page.keyboard.press("Space")
            page.wait_for_timeout(300)
        page.keyboard.press("2")                       # paper
        page.keyboard.press("Space")
        page.wait_for_function("document.querySelector('[data-label=paper]').textContent === '1'", timeout=10_000)
        page.keyboard.down("b")                        # hold to burst: frames keep coming while B is down
        page.wait_for_function("Number(document.querySelector('[data-label=paper]').textContent) >= 3",
                               timeout=30_000)
        page.keyboard.up("b")
        # The last burst frame may still be on its way: wait until page and disk agree, twice in a row.
        agreed = 0
        for _ in range(50):
            page.wait_for_timeout(200)
            on_disk = len(list((out / "paper").glob("*.jpg")))
            agreed = agreed + 1 if page.inner_text("[data-label=paper]") == str(on_disk) else 0
            if agreed == 2:
                break
        rock = sorted((out / "rock").glob("*.jpg"))
        paper = sorted((out / "paper").glob("*.jpg"))
        assert len(rock) == 2 and len(paper) >= 3      # burst: several frames, all under the chosen label
        assert not (out / "scissors").exists()
        for f in rock + paper:
            with Image.open(f) as im:
                assert im.format == "JPEG" and im.size == (640, 480)
        assert page.inner_text("[data-label=rock]") == "2"
        assert page.inner_text("[data-label=paper]") == str(len(paper))
        assert "Saved paper/" in page.inner_text("#status")
        page.keyboard.press("3")
        assert page.inner_text(".labels button.active") == "3scissors"
        _screenshot(page, "capture-page.png", tmp_path)
        assert not any(p.name.startswith(".") for p in out.rglob("*"))  # no temporary files left
    finally:
        server.shutdown()


def test_camera_errors_are_said_in_plain_words(playwright, tmp_path):
    server = serve(CaptureApp(["rock"], tmp_path / "out"), port=0)
    try:  # no fake camera and no permission
        b = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS[2:] + ["--deny-permission-prompts"],
                                       headless=True)
        page = b.new_page()
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        page.wait_for_selector("body[data-camera=error]", timeout=20_000)
        text = page.inner_text("#status")
        b.close()
        assert text.startswith(("Camera permission was denied", "No camera was found")), text
    finally:
        server.shutdown()


def test_live_page_predicts_frames(browser, tmp_path):
    data = make_imagefolder(tmp_path / "d", labels=("red", "blue"), per_class=6)
    assert main(["run", str(data), "--out", str(tmp_path / "r"), "--backbone", TINY, "--quiet"]) == 0
    from siirto.capture.live import Predictor

    server = serve(CaptureApp(predictor=Predictor(tmp_path / "r" / "model")), port=0)
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 640})
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        page.wait_for_function("Number(document.body.dataset.predictions || 0) >= 5", timeout=30_000)
        assert page.inner_text("#prediction") in ("red", "blue")
        assert "frames/s" in page.inner_text("#fps") and "%" in page.inner_text("#probability")
        _screenshot(page, "live-page.png", tmp_path)
    finally:
        server.shutdown()
