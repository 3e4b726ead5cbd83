"""The README's picture of bilinear against guided chroma upsampling: one photo colorized by the
shipped model twice, the same crop of both enlarged side by side, with the truth beside.

    python scripts/upsampling_picture.py ../shared/data/photos/bsds500/test/15062.jpg \
        --crop 150 40 200 200 --out docs/upsampling/bilinear_vs_guided.png

Everything but the upsampling is predict's default for the model (its working size and
decoding), so the two panels differ only where the color meets the photo's edges.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from lit_colorize import Colorizer

LABEL_HEIGHT = 18


def panel(image: Image.Image, crop: tuple[int, int, int, int], scale: int, label: str) -> Image.Image:
    x, y, width, height = crop
    enlarged = image.crop((x, y, x + width, y + height)).resize((width * scale, height * scale), Image.Resampling.NEAREST)
    out = Image.new("RGB", (enlarged.width, enlarged.height + LABEL_HEIGHT), "white")
    out.paste(enlarged, (0, LABEL_HEIGHT))
    ImageDraw.Draw(out).text((4, 3), label, fill="black")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("--crop", type=int, nargs=4, metavar=("X", "Y", "W", "H"), required=True)
    parser.add_argument("--scale", type=int, default=2, help="enlargement of the crop (nearest neighbour: pixels stay pixels)")
    parser.add_argument("--out", type=Path, default=Path("docs/upsampling/bilinear_vs_guided.png"))
    args = parser.parse_args(argv)
    truth = Image.open(args.photo).convert("RGB")
    crop = tuple(args.crop)
    panels = [panel(truth.convert("L").convert("RGB"), crop, args.scale, "gray input")]
    for upsampling in ("bilinear", "guided"):
        colored = Colorizer.pretrained(upsampling=upsampling).colorize(truth)
        panels.append(panel(colored, crop, args.scale, f"{upsampling} (the model's defaults otherwise)"))
    panels.append(panel(truth, crop, args.scale, "the photo's own colors"))
    gap = 6
    sheet = Image.new("RGB", (sum(p.width for p in panels) + gap * (len(panels) - 1), panels[0].height), "white")
    left = 0
    for image in panels:
        sheet.paste(image, (left, 0))
        left += image.width + gap
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height}): {args.photo.name}, crop {crop} enlarged {args.scale}x")


if __name__ == "__main__":
    main()
