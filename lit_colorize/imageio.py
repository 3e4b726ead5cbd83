"""Reading a user's photo into correct 8-bit RGB, whatever its mode, depth or orientation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor


class ImageReadError(ValueError):
    """A file that is not a readable image; the message names the file."""


def _to_uint8_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL mode -> (H, W, 3) uint8. 16/32-bit gray is scaled, not truncated."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max() <= 1.0 else 1.0
        gray = np.clip(np.round(values * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Alpha is dropped here (colors under it are kept); callers that keep alpha read it themselves.
        return np.asarray(image.convert("RGBA"))[..., :3].copy()
    return np.asarray(image.convert("RGB")).copy()


def load_rgb(path: str | Path) -> Tensor:
    """Decode ``path`` to a uint8 tensor (3, H, W): EXIF orientation applied; gray, palette,
    RGBA, CMYK and 16-bit images converted to 8-bit RGB. Raises :class:`ImageReadError`
    (naming the file) for corrupt, truncated, empty or non-image files."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            pixels = _to_uint8_rgb(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"cannot read image {path}: {error}") from error
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
