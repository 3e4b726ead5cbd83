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
def site(downloads: Path) -> Iterator[tuple[Any, str]]:
    from lit_colorize.colorizer import Colorizer
    from lit_colorize.pretrained import default_serve_checkpoint

    checkpoint = default_serve_checkpoint()
    with live_server(Colorizer.from_checkpoint(checkpoint), model_name=checkpoint.name) as url, chromium(downloads) as driver:
        yield driver, url


@pytest.fixture
def page(site: tuple[Any, str]) -> ColorizePage:
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
