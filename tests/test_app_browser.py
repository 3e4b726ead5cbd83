"""The page in a real browser: Debian's headless Chromium, driven through Selenium, against the
server on 127.0.0.1 with the model ``lit-colorize serve`` loads by default. Skipped, with the
reason, where Chromium, its driver or Selenium is absent (.ci/run installs them where it can)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the page needs the app extra: pip install -e '.[app]'")
from lit_colorize.app.browser import ColorizePage, browser_missing, chromium, live_server  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.skipif(browser_missing() is not None, reason=f"no browser: {browser_missing()}")]


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def server(downloads: Path) -> Iterator[tuple[str, Any, list[dict]]]:
    """The page at its defaults with the model ``lit-colorize serve`` loads; yields its address,
    the app (its gates and photos) and the log of every request it answered."""
    from lit_colorize.app.browser import live_app
    from lit_colorize.app.server import create_app
    from lit_colorize.colorizer import Colorizer
    from lit_colorize.pretrained import default_serve_checkpoint

    checkpoint = default_serve_checkpoint()
    app = create_app(Colorizer.from_checkpoint(checkpoint), model_name=checkpoint.name)
    answered: list[dict] = []
    with live_app(recording(app, answered)) as url:
        yield url, app, answered


@pytest.fixture(scope="module")
def site(server: tuple[str, Any, list[dict]], downloads: Path) -> Iterator[tuple[Any, str]]:
    with chromium(downloads, resolve_to_loopback=["evil.example"]) as driver:
        yield driver, server[0]


def recording(app: Any, answered: list[dict]) -> Any:
    """``app``, noting each request's method, path, Origin, Sec-Fetch-Site and answer status."""

    async def recorded(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        entry = {"method": scope["method"], "path": scope["path"], "origin": headers.get("origin"),
                 "site": headers.get("sec-fetch-site"), "status": None}  # fmt: skip
        answered.append(entry)

        async def noting(message: dict) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        await app(scope, receive, noting)

    return recorded


@pytest.fixture
def page(site: tuple[Any, str]) -> ColorizePage:
    site[0].set_window_size(1400, 1000)
    return ColorizePage(*site)


@pytest.fixture
def photo(shared_data: Path) -> Path:
    return sorted((shared_data / "photos" / "bsds500" / "test").glob("*.jpg"))[0]


def ab_of(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(rgb, dtype=np.uint8).reshape(-1, 1, 3))[:, 0, 1:]


def test_a_photo_is_colorized_at_its_size_with_its_gray_input_beside(page: ColorizePage, photo: Path) -> None:
    page.upload(photo)
    result = page.result_pixels()
    assert result.shape == (321, 481, 3)
    assert np.abs(result.astype(int) - result[..., :1]).mean() > 3, "the result is gray"
    assert page.element("gray").is_displayed() and "color taken to gray" in page.element("input-note").text
    assert "ms on the server" in page.element("status").text


def test_the_temperature_slider_and_buttons_change_the_result(page: ColorizePage, photo: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    page.upload(photo)
    page.choose_temperature("0")
    mode = page.result_pixels()
    page.choose_temperature("1")
    mean = page.result_pixels()
    assert page.element("temperature-value").text == "1.00"
    assert np.abs(mode.astype(int) - mean).mean() > 0.5
    before = page.result_version
    for _ in range(4):  # the slider itself, moved from the keyboard as a user can
        page.element("temperature").send_keys(Keys.ARROW_LEFT)
    # each step may start a render; the last one shown is at the slider's final value
    page.wait.until(lambda _: page.result_version > before and "T=0.80" in page.element("status").text)
    assert page.element("temperature-value").text == "0.80"


def test_hints_can_be_moved_removed_saved_and_loaded(page: ColorizePage, photo: Path, downloads: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    page.upload(photo)
    for x, y in ((100, 100), (300, 200)):
        page.click_photo(x, y)
        page.pick_suggestion(0)
    first, second = page.hints
    dot = page.driver.find_elements(By.CSS_SELECTOR, "#hint-dots .dot")[0]
    scale = page.element("result").rect["width"] / 481
    before = page.result_version
    ActionChains(page.driver).drag_and_drop_by_offset(dot, round(50 * scale), round(20 * scale)).perform()
    page.wait.until(lambda _: page.result_version > before)
    moved = page.hints[0]
    assert abs(moved["x"] - 150) <= 2 and abs(moved["y"] - 120) <= 2 and moved["color"] == first["color"]
    saved_before = set(downloads.glob("*.hints.json"))
    page.element("save-hints").click()
    page.wait.until(lambda _: set(downloads.glob("*.hints.json")) - saved_before)
    saved = (set(downloads.glob("*.hints.json")) - saved_before).pop()
    assert saved.name == f"{photo.stem}.hints.json" and json.loads(saved.read_text()) == [moved, second]
    removes = page.driver.find_elements(By.CSS_SELECTOR, "#hints-list button")
    page.after(removes[0].click)
    assert page.hints == [second]
    page.after(lambda: page.element("load-hints").send_keys(str(saved)))
    assert page.hints == [moved, second]


def test_a_clicked_hint_with_a_suggested_color_pulls_the_pixels_around_it(page: ColorizePage, photo: Path) -> None:
    page.upload(photo)
    x, y = 120, 240  # the snow in front of the bear
    window = (slice(y - 4, y + 5), slice(x - 4, x + 5))
    before = ab_of(page.result_pixels()[window]).mean(axis=0)
    suggestions = page.click_photo(x, y)
    assert len(suggestions) == 6 and all(s["label"].endswith("%") for s in suggestions)
    # the suggestion farthest from what is shown there now, so the move is measurable
    distances = [np.linalg.norm(ab_of(np.array([[int(s["color"][i : i + 2], 16) for i in (1, 3, 5)]]))[0] - before) for s in suggestions]
    chosen = int(np.argmax(distances))
    target = ab_of(np.array([[int(suggestions[chosen]["color"][i : i + 2], 16) for i in (1, 3, 5)]]))[0]
    page.pick_suggestion(chosen)
    (hint,) = page.hints  # where the click landed: within a pixel of the target (CSS pixels are coarser than the photo's)
    assert abs(hint["x"] - x) <= 1 and abs(hint["y"] - y) <= 1 and hint["color"] == suggestions[chosen]["color"]
    after = ab_of(page.result_pixels()[window]).mean(axis=0)
    assert np.linalg.norm(after - target) < 0.5 * np.linalg.norm(before - target), (before, after, target)


def test_the_download_is_the_full_size_photo(page: ColorizePage, shared_data: Path, downloads: Path) -> None:
    large = shared_data / "photos" / "large" / "mate-backgrounds__Dune.jpg"
    page.upload(large)
    assert page.result_pixels().shape == (640, 1024, 3)  # the page shows a preview
    saved = page.download(downloads)
    assert saved.name == "mate-backgrounds__Dune_colorized_T0.8.png"
    with Image.open(saved) as image:
        assert image.size == (1680, 1050)


def test_a_text_file_gets_a_message_and_the_server_goes_on(page: ColorizePage, photo: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a photo\n")
    message = page.upload_expecting_error(text)
    assert message == "notes.txt: the file is not an image; choose a photo (JPEG, PNG, WebP, TIFF, BMP, GIF)"
    page.upload(photo)
    assert page.result_pixels().shape == (321, 481, 3)
    assert not page.element("error").is_displayed()


def test_a_screenshot_of_the_page_with_a_result(page: ColorizePage, photo: Path, tmp_path: Path) -> None:
    page.upload(photo)
    shot = tmp_path / "page.png"
    assert page.driver.save_screenshot(str(shot))
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[1] >= 1200 and pixels.std() > 20


# ---- issue 25: other web pages, and the page's rough edges --------------------------------

HOSTILE_PAGE = """<!doctype html><html><body><p>an ordinary page in another tab</p><script>
const params = new URLSearchParams(location.search);
const victim = params.get("victim"), id = params.get("id");
const results = {};
async function attempt(name, url, options) {
  try {
    const response = await fetch(url, options);
    results[name] = response.type === "opaque" ? "opaque" : `read ${response.status}: ${(await response.text()).slice(0, 80)}`;
  } catch (error) { results[name] = "failed"; }
}
function image(name, url) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => { results[name] = "loaded"; resolve(); };
    img.onerror = () => { results[name] = "failed"; resolve(); };
    img.src = url;
  });
}
(async () => {
  const json = JSON.stringify({ temperature: 0.5, hints: [] });
  await attempt("model", `${victim}/api/model`, {});
  await attempt("page", `${victim}/`, {});
  await attempt("script", `${victim}/static/app.js`, {});
  for (let i = 0; i < 9; i++) {  // enough to push the user's photo out of the server's last 8
    await attempt(`upload ${i}`, `${victim}/api/photos`, { method: "POST", mode: "no-cors", body: new Blob([new Uint8Array([137, 80, 78, 71])], { type: "text/plain" }) });
  }
  await attempt("upload as octet-stream", `${victim}/api/photos`, { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: "x" });
  for (const path of ["colorize", "suggest", "download"]) {
    await attempt(`${path} as text`, `${victim}/api/photos/${id}/${path}`, { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body: json });
    await attempt(`${path} as json`, `${victim}/api/photos/${id}/${path}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: json });
  }
  await image("gray image", `${victim}/api/photos/${id}/gray.png`);
  window.results = results;
})();
</script></body></html>"""


@pytest.fixture(scope="module")
def hostile_port() -> Iterator[int]:
    """A second web server on another loopback port, serving :data:`HOSTILE_PAGE`."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = HOSTILE_PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()


def test_case1_a_rebound_name_gets_neither_the_page_nor_the_api(site: tuple[Any, str]) -> None:
    """evil.example resolves to 127.0.0.1 in this Chromium, as a rebinding attacker's name would."""
    from selenium.webdriver.common.by import By

    driver, url = site
    port = url.rsplit(":", 1)[1]
    for path in ("/", "/api/model", "/static/app.js"):
        driver.get(f"http://evil.example:{port}{path}")
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "this server answers to 127.0.0.1, localhost, [::1] only" in text, text
        assert driver.execute_script("return document.body.dataset.ready") is None


@pytest.mark.parametrize("name", ["evil.example", "127.0.0.1"], ids=["another-site", "another-port"])
def test_case2_a_page_of_another_origin_can_use_no_endpoint(
    page: ColorizePage, photo: Path, server: tuple[str, Any, list[dict]], hostile_port: int, name: str
) -> None:
    url, app, answered = server
    page.upload(photo)
    mine = page.driver.execute_script("return state.photo.id")
    kept = len(app.state.photos)
    answered.clear()
    page.driver.get(f"http://{name}:{hostile_port}/?victim={url}&id={mine}")
    page.wait.until(lambda d: d.execute_script("return window.results !== undefined"))
    results = page.driver.execute_script("return window.results")
    readable = {k: v for k, v in results.items() if v.startswith("read") or v == "loaded"}
    assert not readable, readable  # nothing came back to the other page
    from_elsewhere = [a for a in answered if a["site"] not in ("same-origin", "none")]
    assert {a["path"].rsplit("/", 1)[-1] for a in from_elsewhere} >= {"model", "photos", "colorize", "suggest", "download", "gray.png"}
    assert all(a["status"] in (400, 403, 415) for a in from_elsewhere), from_elsewhere  # refused, not merely unreadable
    assert len(app.state.photos) == kept and mine in app.state.photos
    own = ColorizePage(page.driver, url)
    assert own.driver.execute_script("return document.body.dataset.ready") == "true"


def test_case14_the_empty_page_shows_no_broken_images_and_no_slider(page: ColorizePage) -> None:
    for hidden in ("panels", "gray", "result", "before", "compare", "hints", "picker", "download-busy", "error"):
        assert not page.element(hidden).is_displayed(), hidden
    broken = page.driver.execute_script(
        "return [...document.images].filter(i => i.getClientRects().length && !i.naturalWidth).map(i => i.id)"
    )
    assert broken == []
    assert page.element("status").text.startswith("Choose or drop a gray or color photo")


def test_case15_the_picker_opens_inside_the_window_after_it_is_narrowed(page: ColorizePage, photo: Path) -> None:
    page.upload(photo)
    page.click_photo(470, 20)  # the right edge: the picker opens left of the click
    page.element("picker-close").click()
    try:
        page.driver.set_window_size(400, 900)
        page.wait.until(lambda d: d.execute_script("return document.documentElement.clientWidth") <= 400)
        page.click_photo(470, 160)
        box = page.driver.execute_script(
            "const r = document.getElementById('picker').getBoundingClientRect();"
            "return [r.left, r.right, r.top, r.bottom, document.documentElement.clientWidth, document.documentElement.clientHeight]"
        )
        left, right, top, bottom, width, height = box
        assert 0 <= left and right <= width and 0 <= top and bottom <= height, box
    finally:
        page.driver.set_window_size(1400, 1000)


def test_case16_no_stale_error_status_or_refused_hint(page: ColorizePage, photo: Path) -> None:
    from selenium.webdriver.common.by import By

    page.upload(photo)
    page.click_photo(100, 100)
    page.element("picker-size").send_keys("1e300")  # a patch side the server refuses
    page.driver.find_elements(By.CSS_SELECTOR, "#palette .swatch")[0].click()
    page.wait.until(lambda _: page.element("error").is_displayed())
    assert "size must be at most 962 photo pixels" in page.element("error").text
    assert page.hints == [] and page.driver.find_elements(By.CSS_SELECTOR, "#hint-dots .dot") == []  # not kept
    assert not page.element("status").text.startswith("Colorized")
    assert page.element("status").text.startswith("Not colorized: the server refused the last change")
    page.click_photo(100, 100)  # suggestions answered: the old error goes
    assert not page.element("error").is_displayed()
    page.pick_suggestion(0)
    assert len(page.hints) == 1 and page.element("status").text.startswith("Colorized")


def test_case17_a_marker_at_the_clicked_pixel_and_readable_labels(page: ColorizePage, photo: Path) -> None:
    from selenium.webdriver.common.by import By
    from skimage.color import rgb2lab

    page.upload(photo)
    for x, y in ((120, 240), (300, 60)):  # snow (pale suggestions) and sky
        page.click_photo(x, y)
        marker = page.driver.find_element(By.CSS_SELECTOR, "#hint-dots .marker").rect
        shown = page.element("result").rect
        centre = (marker["x"] + marker["width"] / 2 - shown["x"], marker["y"] + marker["height"] / 2 - shown["y"])
        expected = ((x + 0.5) / 481 * shown["width"], (y + 0.5) / 321 * shown["height"])
        assert abs(centre[0] - expected[0]) <= 2 and abs(centre[1] - expected[1]) <= 2, (centre, expected)
        for swatch in page.driver.find_elements(By.CSS_SELECTOR, "#palette .swatch"):
            background = [int(swatch.get_attribute("data-color")[i : i + 2], 16) for i in (1, 3, 5)]
            label = page.driver.execute_script("return getComputedStyle(arguments[0]).color", swatch)
            lightness = rgb2lab(np.array([[background]], dtype=np.float64) / 255)[0, 0, 0]
            assert label == ("rgb(17, 17, 17)" if lightness > 60 else "rgb(255, 255, 255)"), (background, label)
        page.element("picker-close").click()
        assert page.driver.find_elements(By.CSS_SELECTOR, "#hint-dots .marker") == []


def test_case18_a_full_size_download_shows_progress_and_can_be_cancelled(
    page: ColorizePage, server: tuple[str, Any, list[dict]], tmp_path: Path
) -> None:
    app = server[1]
    blocks = np.random.default_rng(5).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    large = tmp_path / "large.png"
    Image.fromarray(np.kron(blocks, np.ones((100, 100, 1), dtype=np.uint8))).save(large)  # 4000x3000
    page.upload(large)
    abandoned = app.state.large_gate.abandoned
    page.element("download").click()
    page.wait.until(lambda _: page.element("download-progress").is_displayed())
    assert page.element("download-cancel").is_displayed() and not page.element("download").is_enabled()
    page.element("download-cancel").click()
    page.wait.until(lambda _: page.element("status").text.startswith("Download cancelled"))
    assert not page.element("download-progress").is_displayed() and page.element("download").is_enabled()
    gate = app.state.large_gate
    page.wait.until(lambda _: gate.abandoned > abandoned and gate.pending == 0)  # the server stopped too


# ---- issue 30: a reference photo or palette chips as the global hint --------------------------

from tests.test_app import global_colorizer  # noqa: E402, F401 - the fixture: a global-hints model, random weights


def test_issue30_a_reference_photo_and_palette_chips_color_the_whole_photo(
    page: ColorizePage, global_colorizer: Any, tmp_path: Path
) -> None:
    """The default model takes no global hint: no control. A global-hints model: a chosen
    reference colors the result as ``Colorizer.colorize(photo, reference=...)`` does and shows
    its most likely colors beside it; a palette chip replaces it; "No global hint" undoes it."""
    from selenium.webdriver.common.by import By

    from lit_colorize.app.browser import live_app
    from lit_colorize.app.references import top_swatches
    from lit_colorize.app.server import create_app

    assert page.driver.execute_script("return state.model.global_hints") is False and not page.element("global").is_displayed()
    rng = np.random.default_rng(21)
    photo = np.kron(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), np.ones((10, 10, 1), np.uint8))  # 160x120
    reference = np.kron(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(reference).save(tmp_path / "reference.png")
    with live_app(create_app(global_colorizer, model_name="global")) as url:
        shown = ColorizePage(page.driver, url)
        assert shown.element("global").is_displayed() and not shown.element("global-palette").is_displayed()
        shown.upload(tmp_path / "photo.png")
        plain = shown.result_pixels()
        np.testing.assert_array_equal(plain, global_colorizer.colorize(photo))
        shown.after(lambda: shown.element("reference-file").send_keys(str(tmp_path / "reference.png")))
        np.testing.assert_array_equal(shown.result_pixels(), global_colorizer.colorize(photo, reference=reference))
        assert "the colors of reference.png" in shown.element("status").text
        swatches = [s.get_attribute("data-color") for s in shown.driver.find_elements(By.CSS_SELECTOR, "#global-swatches .swatch")]
        vector = global_colorizer.global_hint(reference=reference)
        assert swatches == [s["color"] for s in top_swatches(vector, reference, global_colorizer.module.hparams.grid_size)]
        assert shown.element("global-palette").is_displayed() and shown.element("reference-thumb").is_displayed()
        shown.after(shown.element("add-chip").click)  # a palette of one chip replaces the reference
        recolor = "const c = document.querySelector('#chips input[type=color]'); c.value = arguments[0]; c.dispatchEvent(new Event('change'));"
        shown.after(lambda: shown.driver.execute_script(recolor, "#d03030"))
        np.testing.assert_array_equal(shown.result_pixels(), global_colorizer.colorize(photo, palette=["#d03030"], weights=[1]))
        assert not shown.element("reference-thumb").is_displayed()
        chips = shown.driver.find_elements(By.CSS_SELECTOR, "#global-swatches .swatch")
        assert [c.get_attribute("data-color") for c in chips] == ["#d03030"] and chips[0].text == "100%"
        shown.after(shown.element("clear-global").click)
        np.testing.assert_array_equal(shown.result_pixels(), plain)
        assert not shown.element("global-palette").is_displayed()
