"""The web page in a real browser: Debian's Chromium driven by Playwright (never downloads one)."""

import os
import shutil
from pathlib import Path

import pytest
from conftest import live_server
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("PERSONCUT_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))
SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed"),
]


@pytest.fixture()
def server(tiny_onnx):
    with live_server(tiny_onnx) as url:
        yield url


def test_upload_see_cutout_and_download(server, tmp_path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(accept_downloads=True)
        page.goto(server + "/")
        page.wait_for_selector("#info:not(:empty)")
        assert not page.is_visible("#download")  # nothing to download yet
        page.select_option("#quality", "fast")
        page.set_input_files("#file", str(SAMPLE))
        page.wait_for_function(
            "document.getElementById('result').complete && "
            "document.getElementById('result').naturalWidth > 0",
            timeout=30_000,
        )
        size = page.evaluate(
            "[document.getElementById('result').naturalWidth,"
            " document.getElementById('result').naturalHeight]"
        )
        with Image.open(SAMPLE) as im:
            assert tuple(size) == im.size
        assert "Done" in page.inner_text("#status")
        page.screenshot(path=str(ARTIFACTS / "web_page.png"), full_page=True)
        with page.expect_download() as info:
            page.click("#download")
        saved = tmp_path / info.value.suggested_filename
        info.value.save_as(saved)
        assert saved.name == "astronaut.cutout.png"
        with Image.open(saved) as im:
            assert im.mode == "RGBA" and im.size == tuple(size)
        # a rejected file gets a clear message
        bad = tmp_path / "broken.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
        page.set_input_files("#file", str(bad))
        page.wait_for_selector("#status.error")
        assert "broken.png" in page.inner_text("#status")
        assert not page.is_visible("#download")  # no stale download after an error
        browser.close()
