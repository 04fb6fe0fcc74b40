"""The /ui dashboard in headless Chromium: models listed, the try-it box predicts, a screenshot."""

import shutil
from pathlib import Path

import pytest

from conftest import live_server
from fmkit.serve.keys import KeyStore

CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if Path(p).exists()), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None or shutil.which("chromium") is None,
                                reason="Debian chromium is not installed (make test installs it as root)")


def test_dashboard_lists_models_and_predicts(tiny_bundle, tmp_path):
    from playwright.sync_api import sync_playwright

    key, _ = KeyStore(tmp_path).create("predict")
    with live_server(tiny_bundle, tmp_path) as (_, base):
        env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg-config"), "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, env=env, args=[
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(f"{base}/ui")
            assert page.locator("#models tbody tr").count() == 1
            assert "reviews" in page.locator("#models").inner_text()
            page.fill("#key", key)
            page.fill("#text", "a superb, warm and moving film")
            page.click("#go")
            page.wait_for_function("document.getElementById('out').textContent.startsWith('pos')", timeout=15000)
            assert "pos" in page.locator("#out").inner_text()
            page.fill("#key", "fmk_00000000_wrong")
            page.click("#go")
            page.wait_for_function("document.getElementById('out').textContent.startsWith('401')", timeout=15000)
            screenshot = tmp_path / "dashboard.png"
            page.screenshot(path=str(screenshot), full_page=True)
            browser.close()
    assert screenshot.stat().st_size > 10_000
