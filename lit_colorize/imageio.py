"""Reading a user's photo into correct 8-bit RGB (and its alpha), whatever its format, mode,
depth or orientation.

Decoding goes through torchvision.io (libjpeg-turbo, libpng, libwebp, giflib) where it gives
the same pixels as Pillow would: JPEG, PNG, WebP without an EXIF orientation tag, and GIF
without transparency (first frame). Everything else (TIFF, BMP, oriented WebP, transparent
GIF, ...) goes through Pillow. Pillow also reads every file's header first: that tells the
two apart, rejects non-images cheaply and keeps Pillow's decompression-bomb guard.

torchvision 0.29 deprecates its image codecs in favour of TorchCodec; the deprecation warning
is silenced here at the call, and should they be removed, every file takes the Pillow path.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from lit_colorize.errors import UserError

try:
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.io.image import _has_image_ops

    TORCHVISION_DECODES = bool(_has_image_ops())
except ImportError:  # codecs removed from a future torchvision: Pillow does everything
    TORCHVISION_DECODES = False

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_EXIF_ORIENTATION = 0x0112


class ImageReadError(UserError, ValueError):
    """A file that is not a readable image; the message names the file."""


class DecodedImage(NamedTuple):
    """``rgb`` uint8 (3, H, W); ``alpha`` uint8 (1, H, W), or None when the file has none."""

    rgb: Tensor
    alpha: Tensor | None


def _to_uint8(values: np.ndarray, top: float) -> np.ndarray:
    return np.clip(np.round(values.astype(np.float64) / top * 255.0), 0, 255).astype(np.uint8)


def pillow_pixels(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Any PIL mode -> (H, W, 3) uint8 and (H, W) alpha or None. 16/32-bit gray is scaled, not
    truncated (Pillow's own ``convert("RGB")`` clips them, which turns a 16-bit photo white);
    colors under transparent pixels are kept. The one conversion for files and for PIL images
    handed to :class:`~lit_colorize.Colorizer`, so both give the same pixels."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image)
        gray = _to_uint8(values, 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0)
        return np.repeat(gray[..., None], 3, axis=2), None
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError("a 32-bit float image with NaN or infinite values has no gray level to colorize")
        gray = _to_uint8(values, 1.0 if values.max() <= 1.0 else 255.0)
        return np.repeat(gray[..., None], 3, axis=2), None
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))
        return rgba[..., :3].copy(), rgba[..., 3].copy()
    return np.asarray(image.convert("RGB")).copy(), None


def _torchvision_can_decode(header: Image.Image) -> bool:
    """True where torchvision.io decodes this file to the same pixels Pillow would."""
    if not TORCHVISION_DECODES:
        return False
    has_alpha = header.mode in _ALPHA_MODES or "transparency" in header.info
    if header.format in ("JPEG", "MPO"):
        return True
    if header.format == "PNG":
        return not has_alpha or header.mode in ("RGBA", "LA", "P")
    if header.format == "WEBP":  # torchvision ignores EXIF orientation in WebP
        return header.getexif().get(_EXIF_ORIENTATION, 1) == 1
    if header.format == "GIF":  # nor does it read GIF transparency
        return not has_alpha
    return False


def _decode_torchvision(data: bytes, with_alpha: bool) -> DecodedImage:
    mode = ImageReadMode.RGB_ALPHA if with_alpha else ImageReadMode.RGB
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")
        pixels = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode, apply_exif_orientation=True)
    if pixels.ndim == 4:  # animated GIF: first frame
        pixels = pixels[0]
    if pixels.dtype == torch.uint16:  # 16-bit PNG: scale, do not truncate
        pixels = torch.from_numpy(_to_uint8(pixels.numpy().astype(np.float64), 65535.0))
    pixels = pixels.contiguous()
    return DecodedImage(pixels[:3].contiguous(), pixels[3:].contiguous() if with_alpha else None)


def _decode_pillow(path: Path) -> DecodedImage:
    with Image.open(path) as image:
        image.load()
        image = ImageOps.exif_transpose(image)
        rgb, alpha = pillow_pixels(image)
    return DecodedImage(
        torch.from_numpy(rgb).permute(2, 0, 1).contiguous(),
        None if alpha is None else torch.from_numpy(alpha)[None].contiguous(),
    )


def read_image(path: str | Path) -> DecodedImage:
    """Decode ``path`` to uint8 RGB (3, H, W) plus its alpha (1, H, W) if it has one: EXIF
    orientation applied; gray, palette, RGBA, CMYK and 16-bit images converted to 8-bit.
    Raises :class:`ImageReadError`, naming the file, for corrupt, truncated, empty or
    non-image files."""
    path = Path(path)
    try:
        with Image.open(path) as header:  # reads the header only
            use_torchvision = _torchvision_can_decode(header)
            with_alpha = header.mode in _ALPHA_MODES or "transparency" in header.info
        if use_torchvision:
            try:
                return _decode_torchvision(path.read_bytes(), with_alpha)
            except RuntimeError:
                pass  # let Pillow decode it, or give the error that names what is wrong
        return _decode_pillow(path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageReadError(f"cannot read image {path}: {error}") from error


def load_rgb(path: str | Path) -> Tensor:
    """Decode ``path`` to a uint8 tensor (3, H, W); see :func:`read_image`."""
    return read_image(path).rgb
