"""A user's color hints for one photo: read from Python or JSON, checked, and mapped from the
photo's own pixels to the network's working resolution.

A hint is ``{"x": 120, "y": 45, "color": "#2a6fdb"}``, optionally with ``"size"`` (the patch's
side in photo pixels). ``x``, ``y`` are the photo's pixel coordinates (0 at the top-left pixel's
centre, as an image viewer shows them); ``color`` is sRGB, ``"#rrggbb"`` or ``(r, g, b)`` in
0..255. Only its chroma is used: its ab is taken at the color's own L, and the photo keeps its
own L, so a hint says "this hue and saturation here", whatever the photo's lightness.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lit_colorize.color import rgb_to_lab
from lit_colorize.errors import UserError
from lit_colorize.hints import place_hints

#: The patch's side at the working resolution when a hint gives no size: within the 1-9 px
#: patches the network saw while training, large enough to survive the output stride.
DEFAULT_WORKING_SIDE = 3
#: The most hints one photo takes: placing them costs time that grows faster than their count
#: (100,000 took minutes on a small photo), and no one clicks more than a few dozen.
MAX_HINTS = 256
#: Longest part of a value that an error message repeats (a 200 KB color string is not echoed).
SHOWN_CHARS = 40
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")
_KEYS = {"x", "y", "color", "size"}


def shown(value: Any) -> str:
    """``repr(value)``, cut to about :data:`SHOWN_CHARS` characters for an error message."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 1]}…"


def _finite(value: Any) -> bool:
    """A real, finite number: not a bool, not NaN or infinite, and (an int) not too large for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # a 400-digit int
        return False


class HintError(UserError, ValueError):
    """A hint that cannot be used; the message names the photo and the hint."""


@dataclass  # not frozen: Lightning's batch transfer rebuilds the dataclasses it meets
class UserHint:
    """One checked hint: where (photo pixels), its color and its ab (ab units), its side (photo
    pixels; None: :data:`DEFAULT_WORKING_SIDE` working pixels)."""

    x: float
    y: float
    rgb: tuple[int, int, int]
    ab: tuple[float, float]
    size: float | None = None


def parse_color(color: Any) -> tuple[int, int, int]:
    """``"#2a6fdb"`` (or without ``#``) or ``(r, g, b)`` in 0..255 -> an RGB tuple; ValueError otherwise."""
    if isinstance(color, str):
        match = _HEX.fullmatch(color.strip())
        if not match:
            raise ValueError(f"color {shown(color)} is not #rrggbb")
        digits = match.group(1)
        return tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
    if isinstance(color, (list, tuple)) and len(color) == 3:
        if all(_finite(c) and 0 <= c <= 255 for c in color):
            if all(float(c).is_integer() for c in color):
                return tuple(int(c) for c in color)  # type: ignore[return-value]
    raise ValueError(f"color {shown(color)} is neither '#rrggbb' nor (r, g, b) with whole numbers in 0..255")


def color_ab(rgb: tuple[int, int, int]) -> tuple[float, float]:
    """The CIE ab of an sRGB color, at the color's own L."""
    lab = rgb_to_lab(torch.tensor(rgb, dtype=torch.uint8).view(3, 1, 1))
    return float(lab[1, 0, 0]), float(lab[2, 0, 0])


def parse_hints(hints: Sequence[Mapping[str, Any]] | None, photo: str, height: int, width: int) -> list[UserHint]:
    """Checked hints for a ``height`` x ``width`` photo; :class:`HintError` naming ``photo`` and
    the hint (its position in the list, from 1) for anything that cannot be used."""
    if hints is None:
        return []
    if isinstance(hints, Mapping) or not isinstance(hints, Sequence) or isinstance(hints, (str, bytes)):
        raise HintError(f"{photo}: hints must be a list of {{'x', 'y', 'color'[, 'size']}}, got {type(hints).__name__}")
    if len(hints) > MAX_HINTS:
        raise HintError(f"{photo}: {len(hints)} hints, more than the {MAX_HINTS} a photo takes; keep the ones that matter")
    checked = []
    longest = 2 * max(height, width)  # a patch this wide covers the photo from any point in it
    for number, hint in enumerate(hints, start=1):
        where = f"{photo}: hint {number} ({shown(hint)})"
        if not isinstance(hint, Mapping):
            raise HintError(f"{where}: a hint is {{'x': ..., 'y': ..., 'color': '#rrggbb'[, 'size': ...]}}")
        missing, unknown = {"x", "y", "color"} - set(hint), set(hint) - _KEYS
        if missing or unknown:
            problem = f"needs {', '.join(sorted(missing))}" if missing else f"has unknown keys {', '.join(sorted(unknown))}"
            raise HintError(f"{where} {problem}; a hint takes x, y, color and optionally size")
        x, y, size = hint["x"], hint["y"], hint.get("size")
        for name, value in (("x", x), ("y", y)) + ((("size", size),) if size is not None else ()):
            if not _finite(value):
                raise HintError(f"{where}: {name} must be a number of photo pixels, got {shown(value)}")
        if not (-0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5):
            raise HintError(f"{where} lies outside the {width}x{height} photo (x 0..{width - 1}, y 0..{height - 1})")
        if size is not None and size < 1:
            raise HintError(f"{where}: size must be at least 1 photo pixel, got {shown(size)}")
        if size is not None and size > longest:
            raise HintError(
                f"{where}: size must be at most {longest} photo pixels (twice the photo's longer side), got {shown(size)}"
            )
        try:
            rgb = parse_color(hint["color"])
        except ValueError as error:
            raise HintError(f"{where}: {error}") from None
        checked.append(UserHint(float(x), float(y), rgb, color_ab(rgb), None if size is None else float(size)))
    return checked


def working_position(coordinate: float, photo_side: int, working_side: int) -> float:
    """A photo pixel coordinate at the working resolution, pixel centres to pixel centres (the
    geometry of bilinear resizing with ``align_corners=False``)."""
    return (coordinate + 0.5) * working_side / photo_side - 0.5


def working_hints(
    hints: Sequence[UserHint], photo_size: tuple[int, int], working: tuple[int, int], device: torch.device | str | None = None
) -> Tensor:
    """The network's hint channels (1, 3, h, w): hint ab (normalized, 0 = none) and mask, for
    hints given in the pixels of a photo of ``photo_size`` (H, W) seen at ``working`` (h, w)."""
    (height, width), (h, w) = photo_size, working
    scale = math.sqrt((h / height) * (w / width))
    rows = []
    for hint in hints:
        side = DEFAULT_WORKING_SIDE if hint.size is None else max(1, round(hint.size * scale))
        y = min(max(working_position(hint.y, height, h), 0.0), h - 1.0)
        x = min(max(working_position(hint.x, width, w), 0.0), w - 1.0)
        rows.append((y, x, hint.ab[0], hint.ab[1], side))
    hint_ab, mask = place_hints(h, w, rows, device)
    return torch.cat([hint_ab, mask], dim=1)
