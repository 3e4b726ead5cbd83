"""Take the README's screenshot of the web page: the real page, in Debian's headless Chromium,
with the model ``lit-colorize serve`` loads by default, a real photo, hints placed by clicking
and giving the color the photo really has there (as a user who remembers it would, through
the picker's own color input), and the picker open, with the model's suggestions, on one
more pixel.

    python scripts/app_screenshot.py [--photo PATH] [--out docs/app/page.png]

Needs the ``dev`` extra (Selenium) and Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from lit_colorize.app.browser import ColorizePage, browser_missing, chromium, live_server  # noqa: E402
from lit_colorize.atomic import atomic_write  # noqa: E402
from lit_colorize.colorizer import Colorizer  # noqa: E402
from lit_colorize.pretrained import default_serve_checkpoint  # noqa: E402

DEFAULT_PHOTO = REPO_ROOT.parent / "shared" / "data" / "photos" / "bsds500" / "test" / "102062.jpg"  # the orange car


def true_color(photo: Path, x: int, y: int) -> str:
    """The photo's mean color in the 5x5 pixels around (x, y), as #rrggbb."""
    import numpy as np
    from PIL import Image

    with Image.open(photo) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3]
    return "#" + "".join(f"{round(v):02x}" for v in pixels.reshape(-1, 3).mean(axis=0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default=str(DEFAULT_PHOTO))
    parser.add_argument("--hints", nargs="+", type=int, default=[60, 190, 300, 60, 420, 255], help="x y pairs to click")
    parser.add_argument("--open", nargs=2, type=int, default=[200, 265], help="x y of the pixel the picker is left open on")
    parser.add_argument("--compare", type=int, default=0, help="the before/after slider, 0-100 (0: all result)")
    parser.add_argument("--out", default=str(REPO_ROOT / "docs" / "app" / "page.png"))
    args = parser.parse_args(argv)
    missing = browser_missing()
    if missing:
        sys.exit(f"no browser: {missing}")
    checkpoint = default_serve_checkpoint()
    points = list(zip(args.hints[::2], args.hints[1::2]))
    with tempfile.TemporaryDirectory() as downloads, live_server(
        Colorizer.from_checkpoint(checkpoint), model_name=checkpoint.name
    ) as url, chromium(Path(downloads)) as driver:
        page = ColorizePage(driver, url)
        page.upload(Path(args.photo))
        for x, y in points:
            page.click_photo(x, y)
            page.pick_color(true_color(Path(args.photo), x, y))
        driver.execute_script(
            "const c = document.getElementById('compare'); c.value = arguments[0]; c.dispatchEvent(new Event('input'));", args.compare
        )
        page.click_photo(*args.open)  # the picker open, its palette filled
        png = driver.get_screenshot_as_png()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as stream:
        stream.write(png)
    print(f"wrote {out}: {len(points)} hints on {Path(args.photo).name}, model {checkpoint.name}")


if __name__ == "__main__":
    main()
