"""The web page's photos: uploaded bytes decoded in memory, bounded, and kept for a while.

Nothing from an upload touches the disk or names a path: the bytes are decoded by Pillow from
memory (its header first, so an oversized photo is refused before its pixels are), and the
photo is kept in a small in-memory store under a random id until newer photos push it out.
"""

from __future__ import annotations

import io
import re
import secrets
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from lit_colorize.errors import UserError, one_line
from lit_colorize.fullres import full_resolution_l, render
from lit_colorize.imageio import pillow_pixels

#: The longest side of the photo the page shows and re-colorizes on every change; the download
#: is computed at the photo's own size.
PREVIEW_SIDE = 1024


class UploadError(UserError, ValueError):
    """An upload the page cannot use; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Photo:
    """A decoded upload: uint8 RGB (H, W, 3) at full size and at preview size, and whether it
    had color (the page says it was taken to gray)."""

    rgb: np.ndarray
    preview: np.ndarray
    had_color: bool

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as the page and hints count pixels."""
        return self.rgb.shape[1], self.rgb.shape[0]

    @property
    def preview_scale(self) -> tuple[float, float]:
        """(x, y): preview pixels per photo pixel (the two differ by the rounding of the sides)."""
        return self.preview.shape[1] / self.rgb.shape[1], self.preview.shape[0] / self.rgb.shape[0]


def exactly(value: float) -> str:
    """A limit or size as the shortest decimal that is exactly it (``40``, ``0.2``, ``40.005625``),
    so a message never says "40.0 MP, more than this server's 40.0"."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def too_many_pixels(pixels: int, max_pixels: int, size: tuple[int, int] | None = None, what: str = "photo") -> UploadError:
    shape = f"{size[0]}x{size[1]} = " if size else ""
    return UploadError(
        f"the {what} has {shape}{exactly(pixels / 1e6)} MP, over this server's limit of {exactly(max_pixels / 1e6)} MP; "
        "scale it down, or start the server with a larger --max_megapixels",
        status=413,
    )


def allow_pillow_pixels(max_pixels: int) -> None:
    """Raise Pillow's process-wide decompression-bomb limit to ``max_pixels`` where it is lower,
    so a server started for larger photos decodes them (it checks its own limit first)."""
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels


def photo_size(data: bytes, max_pixels: int, what: str = "photo") -> tuple[int, int]:
    """(width, height) from the upload's header alone, cheap enough to ask on the server's event
    loop before queueing the decoding; :class:`UploadError` for an empty upload, a file that is
    not an image, and a photo over ``max_pixels`` (the server's own 413, also where Pillow's
    bomb check would answer first); ``what`` names the upload in the messages."""
    with warnings.catch_warnings():  # on the event loop's thread, where nothing else warns meanwhile
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # answered with the server's own limit
        with _opened(data, max_pixels, what) as image:
            return image.size


def decode_upload(data: bytes, max_pixels: int, what: str = "photo") -> Photo:
    """Uploaded bytes -> a :class:`Photo`; :class:`UploadError` for anything that is not a
    readable image or has more than ``max_pixels`` pixels (checked on the header, before the
    pixels are decoded)."""
    with _opened(data, max_pixels, what) as image:
        try:
            image.load()
            rgb, _ = pillow_pixels(ImageOps.exif_transpose(image))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise _unreadable(error) from None
    return Photo(rgb, _preview(rgb), _has_color(rgb))


@contextmanager
def _opened(data: bytes, max_pixels: int, what: str = "photo") -> Iterator[Image.Image]:
    """The upload opened by Pillow (its header read, no pixels yet) once its size is checked."""
    if not data:
        raise UploadError("the upload is empty; choose a photo (JPEG, PNG, WebP, TIFF, BMP, GIF)")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UploadError("the file is not an image; choose a photo (JPEG, PNG, WebP, TIFF, BMP, GIF)", status=415) from None
    except Image.DecompressionBombError as error:  # over twice Pillow's limit: its message holds the count
        found = re.search(r"\((\d+) pixels\)", str(error))
        raise too_many_pixels(int(found.group(1)) if found else max_pixels + 1, max_pixels, what=what) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise _unreadable(error) from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise too_many_pixels(width * height, max_pixels, (width, height), what)
        yield image


def _unreadable(error: BaseException) -> UploadError:
    return UploadError(f"the image cannot be read ({one_line(error)}); it may be truncated or corrupt", status=415)


def _preview(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = PREVIEW_SIDE / max(height, width)
    if scale >= 1:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.array(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def _has_color(rgb: np.ndarray) -> bool:
    channels = rgb.reshape(-1, 3)
    return bool((channels != channels[:, :1]).any())


def gray_version(rgb: np.ndarray) -> np.ndarray:
    """The photo as the model sees it: its CIE L* alone, shown as neutral gray (a = b = 0)."""
    tensor = torch.from_numpy(rgb).permute(2, 0, 1)
    neutral = torch.zeros(2, 1, 1)
    return render(full_resolution_l(tensor), neutral).permute(1, 2, 0).numpy()


Item = TypeVar("Item")
GONE = "this photo is no longer on the server (it keeps the last few uploads); upload it again"


class PhotoStore(Generic[Item]):
    """The last ``max_photos`` uploads (photos, or the page's reference photos), by random id,
    oldest dropped first; thread-safe. ``gone``: the 404's message for an id no longer kept."""

    def __init__(self, max_photos: int = 8, gone: str = GONE) -> None:
        self.max_photos, self.gone = max_photos, gone
        self._photos: OrderedDict[str, Item] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, photo: Item) -> str:
        photo_id = secrets.token_urlsafe(12)
        with self._lock:
            self._photos[photo_id] = photo
            while len(self._photos) > self.max_photos:
                self._photos.popitem(last=False)
        return photo_id

    def get(self, photo_id: str) -> Item:
        with self._lock:
            photo = self._photos.get(photo_id)
            if photo is None:
                raise UploadError(self.gone, 404)
            self._photos.move_to_end(photo_id)
            return photo

    def __len__(self) -> int:
        with self._lock:
            return len(self._photos)

    def __contains__(self, photo_id: object) -> bool:
        with self._lock:
            return photo_id in self._photos
