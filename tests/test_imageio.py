"""load_rgb: odd modes, EXIF orientation and bad files, all made by the test; and real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from lit_colorize import imageio
from lit_colorize.imageio import ImageReadError, load_rgb, read_image


def _rgb(h: int = 6, w: int = 10) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_rgb_png_round_trips_exactly(tmp_path: Path) -> None:
    pixels = _rgb()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    assert torch.equal(load_rgb(tmp_path / "a.png"), torch.from_numpy(pixels).permute(2, 0, 1))


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "LA"])
def test_modes_become_8bit_rgb(tmp_path: Path, mode: str) -> None:
    source = Image.fromarray(_rgb()).convert(mode)
    path = tmp_path / ("a.tiff" if mode == "CMYK" else "a.png")
    source.save(path)
    out = load_rgb(path)
    assert out.dtype == torch.uint8 and out.shape == (3, 6, 10)
    expected = np.asarray(source.convert("RGB"))
    assert np.abs(out.permute(1, 2, 0).numpy().astype(int) - expected.astype(int)).max() <= 1


def test_16bit_gray_is_scaled_not_truncated(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    out = load_rgb(tmp_path / "deep.png")
    assert out[:, 0].T.tolist() == [[0, 0, 0], [128, 128, 128], [255, 255, 255]]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:16, 0:32]
    pixels = np.stack([yy * 15, xx * 8, np.full_like(xx, 128)], axis=-1).astype(np.uint8)  # smooth: JPEG-safe
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    out = load_rgb(tmp_path / "rotated.jpg").permute(1, 2, 0).numpy().astype(int)
    expected = np.rot90(pixels, k=-1).astype(int)
    assert out.shape == expected.shape == (32, 16, 3)
    assert np.abs(out - expected).mean() < 3


@pytest.mark.parametrize(
    ("name", "content"),
    [("empty.jpg", b""), ("text.png", b"not an image at all"), ("truncated.jpg", None)],
)
def test_bad_files_raise_a_clear_error_naming_the_file(tmp_path: Path, name: str, content: bytes | None) -> None:
    path = tmp_path / name
    if content is None:
        Image.fromarray(_rgb(64, 64)).save(path, quality=90)
        content = path.read_bytes()[: len(path.read_bytes()) // 2]
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=name):
        load_rgb(path)


def test_real_photos(shared_data: Path) -> None:
    photo = sorted((shared_data / "landscape" / "forest").glob("*.jpg"))[0]
    out = load_rgb(photo)
    with Image.open(photo) as reference:
        assert out.shape == (3, reference.height, reference.width)
        assert torch.equal(out, torch.from_numpy(np.array(reference.convert("RGB"))).permute(2, 0, 1))


def _pillow_oracle(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """What Pillow alone makes of the file: oriented, then RGB (and alpha where there is one)."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            rgba = np.asarray(image.convert("RGBA"))
            return rgba[..., :3], rgba[..., 3]
        return np.asarray(image.convert("RGB")), None


def _write(path: Path, pixels: np.ndarray) -> None:
    """Write ``pixels`` in the format and mode the file name asks for."""
    image = Image.fromarray(pixels)
    kind = path.stem
    if kind == "oriented":
        exif = Image.Exif()
        exif[0x0112] = 8 if path.suffix == ".jpg" else 6
        image.save(path, exif=exif, lossless=True)
    elif kind == "gray":
        image.convert("L").save(path)
    elif kind == "cmyk":
        image.convert("CMYK").save(path)
    elif kind == "palette":
        image.convert("P").save(path)
    elif kind == "palette_transparent":
        image.convert("P").save(path, transparency=3)
    elif kind == "rgba":
        Image.fromarray(np.dstack([pixels, pixels[..., 0]])).save(path)
    elif kind == "gray_alpha":
        image.convert("LA").save(path)
    elif kind == "first_frame":
        image.convert("P").save(path, save_all=True, append_images=[Image.fromarray(255 - pixels).convert("P")])
    elif kind == "transparent":
        image.convert("P").save(path, transparency=0)
    else:
        image.save(path, lossless=True)


# file name -> whether torchvision.io should be its decoder
FORMATS = {
    "rgb.jpg": True, "gray.jpg": True, "cmyk.jpg": True, "oriented.jpg": True,
    "rgb.png": True, "palette.png": True, "palette_transparent.png": True, "rgba.png": True, "gray_alpha.png": True,
    "rgb.webp": True, "oriented.webp": False,  # torchvision ignores WebP's EXIF orientation
    "first_frame.gif": True, "transparent.gif": False,  # nor reads GIF transparency
    "rgb.bmp": False, "rgb.tiff": False,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_matches_pillow_and_takes_the_expected_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    path = tmp_path / name
    _write(path, _rgb(24, 40))
    expected_rgb, expected_alpha = _pillow_oracle(path)
    if FORMATS[name] and imageio.TORCHVISION_DECODES:
        monkeypatch.setattr(imageio, "_decode_pillow", lambda p: pytest.fail(f"{name} fell back to Pillow"))
    decoded = read_image(path)
    if name.startswith("oriented"):
        assert decoded.rgb.shape[1:] == (40, 24)  # the 24x40 pixels, turned upright
    assert decoded.rgb.dtype == torch.uint8 and decoded.rgb.shape == (3, *expected_rgb.shape[:2])
    # libjpeg-turbo and Pillow's libjpeg may round the color conversion differently
    tolerance = 1 if name.endswith(".jpg") else 0
    assert np.abs(decoded.rgb.permute(1, 2, 0).numpy().astype(int) - expected_rgb.astype(int)).max() <= tolerance
    if expected_alpha is None:
        assert decoded.alpha is None
    else:
        assert decoded.alpha is not None and torch.equal(decoded.alpha[0], torch.from_numpy(expected_alpha.copy()))


def test_16bit_rgb_png_is_scaled(tmp_path: Path) -> None:
    """Pillow cannot write 48-bit PNG; a hand-made IHDR/IDAT does, with known values."""
    import struct
    import zlib

    row = np.array([[0, 0, 0], [257 * 128, 65535, 256]], dtype=">u2")  # two pixels, 16 bits each
    raw = b"\x00" + row.tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 16, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    (tmp_path / "deep_rgb.png").write_bytes(png)
    out = load_rgb(tmp_path / "deep_rgb.png")
    assert out[:, 0, 1].tolist() == [128, 255, 1]  # 256/65535*255 = 0.996 -> 1
    assert out[:, 0, 0].tolist() == [0, 0, 0]
