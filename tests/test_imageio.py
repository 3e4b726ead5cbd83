"""load_rgb: odd modes, EXIF orientation and bad files, all made by the test; and real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lit_colorize.imageio import ImageReadError, load_rgb


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
