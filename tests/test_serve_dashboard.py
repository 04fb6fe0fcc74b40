"""The /ui dashboard in headless Chromium: it asks for a key, lists what that key may see, try-it
predicts and explains, cards open, an image model takes a file, a screenshot."""

from PIL import Image

from conftest import corner_picture, headless_page, live_server, needs_chromium
from fmkit.serve.keys import KeyStore

pytestmark = needs_chromium


def test_dashboard_asks_for_a_key_lists_its_models_and_predicts(tiny_bundle, tiny_image_bundle, tmp_path):
    store = KeyStore(tmp_path)
    key, narrow = store.create("predict")[0], store.create("predict", ["corners"])[0]
    picture = tmp_path / "corner.png"
    Image.fromarray(corner_picture(1, seed=3)).save(picture)
    with live_server(tiny_bundle, tmp_path, "--bundle", f"corners={tiny_image_bundle}") as (_, base):
        with headless_page(tmp_path) as page:
            page.goto(f"{base}/ui")
            assert page.locator("#models tbody tr").count() == 0  # nothing without a key
            page.fill("#key", "fmk_00000000_wrong")
            page.click("#connect")
            page.wait_for_function("document.getElementById('status').textContent.startsWith('401')", timeout=15000)
            page.fill("#key", narrow)
            page.click("#connect")
            page.wait_for_function("document.getElementById('count').textContent.startsWith('1 model')", timeout=15000)
            assert "reviews" not in page.locator("#models").inner_text()  # the key's allowlist holds
            page.fill("#key", key)
            page.click("#connect")
            page.wait_for_function("document.querySelectorAll('#models tbody tr').length === 2", timeout=15000)
            page.wait_for_selector("#card-reviews", state="attached", timeout=15000)
            assert "reviews" in page.locator("#models").inner_text()
            page.reload()  # the key stays for this tab's session
            page.wait_for_function("document.querySelectorAll('#models tbody tr').length === 2", timeout=15000)
            assert page.input_value("#key") == key
            page.select_option("#model", "reviews")
            page.fill("#text", "a superb, warm and moving film")
            page.click("#go")
            page.wait_for_function("document.getElementById('out').textContent.startsWith('pos')", timeout=15000)
            assert "pos" in page.locator("#out").inner_text()
            page.click("#explain")  # word attributions, highlighted
            page.wait_for_function("document.querySelectorAll('#why span').length > 0", timeout=30000)
            assert "superb" in page.locator("#why").inner_text()
            page.wait_for_selector("#card-reviews summary", timeout=15000)
            page.click("#card-reviews summary")  # the model card, from the manifest
            assert page.locator("#card-reviews h2", has_text="Lineage").is_visible()
            page.select_option("#model", "corners")  # an image model: a file, sent as base64
            assert page.locator("#image").is_visible() and not page.locator("#text").is_visible()
            page.set_input_files("#image", str(picture))
            page.click("#go")
            page.wait_for_function("document.getElementById('out').textContent.startsWith('top-right')",
                                   timeout=15000)
            page.fill("#key", "fmk_00000000_wrong")
            page.click("#go")
            page.wait_for_function("document.getElementById('out').textContent.startsWith('401')", timeout=15000)
            screenshot = tmp_path / "dashboard.png"
            page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
