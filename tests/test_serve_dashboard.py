"""The /ui dashboard in headless Chromium: models listed, try-it predicts and explains, cards open, a screenshot."""

from conftest import headless_page, live_server, needs_chromium
from fmkit.serve.keys import KeyStore

pytestmark = needs_chromium


def test_dashboard_lists_models_and_predicts(tiny_bundle, tmp_path):
    key, _ = KeyStore(tmp_path).create("predict")
    with live_server(tiny_bundle, tmp_path) as (_, base):
        with headless_page(tmp_path) as page:
            page.goto(f"{base}/ui")
            assert page.locator("#models tbody tr").count() == 1
            assert "reviews" in page.locator("#models").inner_text()
            page.fill("#key", key)
            page.fill("#text", "a superb, warm and moving film")
            page.click("#go")
            page.wait_for_function("document.getElementById('out').textContent.startsWith('pos')", timeout=15000)
            assert "pos" in page.locator("#out").inner_text()
            page.click("#explain")  # word attributions, highlighted
            page.wait_for_function("document.querySelectorAll('#why span').length > 0", timeout=30000)
            assert "superb" in page.locator("#why").inner_text()
            page.click("#card-reviews summary")  # the model card, from the manifest
            assert page.locator("#card-reviews h2", has_text="Lineage").is_visible()
            page.fill("#key", "fmk_00000000_wrong")
            page.click("#go")
            page.wait_for_function("document.getElementById('out').textContent.startsWith('401')", timeout=15000)
            screenshot = tmp_path / "dashboard.png"
            page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
