"""The page in a real browser: a live server in a thread and Debian's headless Chromium driven
through Selenium, as a page object (what a user does, one method each).

Used by the browser tests (``tests/test_app_browser.py``) and by ``scripts/app_screenshot.py``,
which takes the README's screenshot. Needs ``selenium`` and Debian's ``chromium`` and
``chromium-driver`` (browser downloads are not possible offline, so Selenium Manager is not used).
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lit_colorize.app.serve import Timeouts, server_for
from lit_colorize.app.server import Limits, create_app
from lit_colorize.colorizer import Colorizer

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Headless, and quiet on a closed network: without the background-networking flags Chromium
# keeps trying to reach Google's hosts.
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
    "--window-size=1400,1000", "--force-device-scale-factor=1",
)  # fmt: skip


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).is_file():
            return f"{path} is missing (Debian: apt-get install chromium chromium-driver; missing package {package})"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def live_server(colorizer: Colorizer, limits: Limits = Limits(), model_name: str = "model") -> Iterator[str]:
    """Serves the page for ``colorizer`` on 127.0.0.1 in a thread, as ``lit-colorize serve``
    does; yields its address."""
    with live_app(create_app(colorizer, limits, model_name)) as url:
        yield url


@contextmanager
def live_app(app: Any, timeouts: Timeouts = Timeouts(), host: str = "127.0.0.1") -> Iterator[str]:
    """Serves the ASGI ``app`` on ``host`` in a thread with the page's uvicorn settings
    (:func:`~lit_colorize.app.serve.server_for`); yields its address."""
    port = free_port()
    server = server_for(app, timeouts, host=host, port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium(download_dir: Path, resolve_to_loopback: Sequence[str] = ()) -> Iterator[Any]:
    """A headless Chromium (a Selenium WebDriver) that saves downloads into ``download_dir``;
    the names in ``resolve_to_loopback`` resolve to 127.0.0.1 inside this browser only (as a
    DNS-rebinding attacker's name would)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    if resolve_to_loopback:
        options.add_argument("--host-resolver-rules=" + ", ".join(f"MAP {name} 127.0.0.1" for name in resolve_to_loopback))
    profile = download_dir / ".chromium-profile"
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(download_dir), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class ColorizePage:
    """What a user does on the page, one method each; waits until the page has answered."""

    def __init__(self, driver: Any, url: str, timeout: float = 60.0) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.wait = WebDriverWait(driver, timeout)
        driver.get(url)
        self.wait.until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))

    def element(self, element_id: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    @property
    def result_version(self) -> int:
        return int(self.element("result").get_attribute("data-version") or 0)

    def after(self, action: Any) -> None:
        """Runs ``action`` and waits for the result it causes."""
        before = self.result_version
        action()
        self.wait.until(lambda _: self.result_version > before)

    def upload(self, photo: Path) -> None:
        self.after(lambda: self.element("file").send_keys(str(Path(photo).resolve())))

    def upload_expecting_error(self, path: Path) -> str:
        self.element("file").send_keys(str(Path(path).resolve()))
        self.wait.until(lambda _: self.element("error").is_displayed())
        return self.element("error").text

    def choose_temperature(self, label: str) -> None:
        """Clicks a preset button: "0", "0.8" or "1"."""
        from selenium.webdriver.common.by import By

        button = self.driver.find_element(By.CSS_SELECTOR, f"[data-temperature='{label}']")
        self.after(button.click)

    def click_photo(self, x: int, y: int) -> list[dict[str, Any]]:
        """Clicks photo pixel (x, y) of the result; returns the suggestions the picker shows."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        result = self.element("result")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", result)
        photo_w, photo_h = self.photo_size
        shown = result.rect  # CSS pixels; the offset is from the element's centre
        dx = (x + 0.5) / photo_w * shown["width"] - shown["width"] / 2
        dy = (y + 0.5) / photo_h * shown["height"] - shown["height"] / 2
        ActionChains(self.driver).move_to_element_with_offset(result, round(dx), round(dy)).click().perform()
        self.wait.until(lambda _: self.element("palette").get_attribute("data-state") in ("ready", "none"))
        swatches = self.driver.find_elements(By.CSS_SELECTOR, "#palette .swatch")
        return [{"color": s.get_attribute("data-color"), "label": s.text} for s in swatches]

    def pick_suggestion(self, index: int) -> None:
        from selenium.webdriver.common.by import By

        swatch = self.driver.find_elements(By.CSS_SELECTOR, "#palette .swatch")[index]
        self.after(swatch.click)

    def pick_color(self, color: str) -> None:
        """Sets the picker's own color input (the browser's native color dialog cannot be
        driven, so its value is set as the dialog would) and clicks "Use it"."""
        script = "const c = document.getElementById('picker-color'); c.value = arguments[0]; c.dispatchEvent(new Event('change'));"
        self.driver.execute_script(script, color)
        self.after(self.element("picker-apply").click)

    @property
    def photo_size(self) -> tuple[int, int]:
        return tuple(self.driver.execute_script("return [state.photo.width, state.photo.height]"))

    @property
    def hints(self) -> list[dict[str, Any]]:
        return self.driver.execute_script("return hintsForServer()")

    def result_pixels(self) -> Any:
        """The shown result as a uint8 numpy array (H, W, 3), read back from the page's own image."""
        import numpy as np

        script = """
            const img = document.getElementById('result');
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const context = canvas.getContext('2d');
            context.drawImage(img, 0, 0);
            return [canvas.width, canvas.height, Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data)];
        """
        width, height, data = self.driver.execute_script(script)
        return np.asarray(data, dtype=np.uint8).reshape(height, width, 4)[..., :3]

    def download(self, folder: Path, timeout: float = 60.0) -> Path:
        """Clicks "Download full size"; returns the file once Chromium has finished writing it."""
        before = set(folder.glob("*.png"))
        self.element("download").click()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = [p for p in set(folder.glob("*.png")) - before if not p.name.endswith(".crdownload")]
            if new and not list(folder.glob("*.crdownload")):
                return new[0]
            time.sleep(0.1)
        raise TimeoutError(f"no download appeared in {folder} within {timeout:.0f} s")
