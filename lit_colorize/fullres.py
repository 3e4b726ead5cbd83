"""Colorizing a photo at its own resolution, in bounded memory.

The network sees L at a small working size; its ab is upsampled to the photo's size and
joined with the photo's own full-resolution L, so the output keeps every detail of the
input. Chroma carries little high-frequency detail, which is why this works (and why
JPEG subsamples it too).

Full-resolution work runs in strips of rows: a 20-megapixel photo never exists as a float
Lab or RGB tensor, only its uint8 input and output and a float L plane do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import Tensor

from lit_colorize.color import L_RANGE, lab_to_rgb, rgb_to_lab
from lit_colorize.errors import ConfigError
from lit_colorize.guided import guided_coefficients, low_resolution_guide

STRIP_PIXELS = 1 << 20  # about 1 megapixel of float work per strip
#: How the network's low-resolution ab reaches the photo's size: ``bilinear`` resizing, or
#: ``guided`` by the photo's own full-resolution L (:mod:`lit_colorize.guided`).
UPSAMPLINGS = ("bilinear", "guided")
#: What every path renders with unless told otherwise (measured: docs/upsampling/, README).
DEFAULT_UPSAMPLING = "guided"
# The network sees at most this many times working_size**2 pixels: a 4:1 panorama keeps the
# full working scale; longer photos are seen smaller (see working_size).
MAX_WORKING_ASPECT = 4.0
# Called between strips (rows done, rows in all) by the work of this thread: a server's way to
# report progress and to stop work nobody waits for any more (the callback raises).
_between_strips: ContextVar[Callable[[int, int], None] | None] = ContextVar("between_strips", default=None)


@contextmanager
def between_strips(callback: Callable[[int, int], None]) -> Iterator[None]:
    """Within this block, full-resolution work on this thread calls ``callback(done, total)``
    before each strip of rows; an exception it raises ends the work there."""
    token = _between_strips.set(callback)
    try:
        yield
    finally:
        _between_strips.reset(token)


def _strip_starts(height: int, step: int) -> Iterator[int]:
    callback = _between_strips.get()
    for top in range(0, height, step):
        if callback is not None:
            callback(top, height)
        yield top


def working_size(
    height: int, width: int, short_side: int, multiple: int, max_aspect: float = MAX_WORKING_ASPECT
) -> tuple[int, int]:
    """(h, w) for the network: the shorter side about ``short_side``, aspect kept, both sides
    multiples of ``multiple`` (2**depth of the U-Net), and at least one multiple.

    The area is bounded too, by ``max_aspect * short_side**2``: a photo longer than that
    aspect is seen at a smaller scale, so that a 1x10000 strip does not become a
    32x320,000 network input. Past the point where its short side is one multiple, the long
    side is squeezed (the aspect is no longer kept), so the bound always holds.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    max_area = max_aspect * short_side * short_side
    scale = short_side / min(height, width)
    if height * width * scale * scale > max_area:
        scale = math.sqrt(max_area / (height * width))

    def snap(side: float) -> int:
        return max(multiple, math.floor(side / multiple) * multiple)

    def snap_nearest(side: float) -> int:
        return max(multiple, round(side / multiple) * multiple)

    size = [snap_nearest(height * scale), snap_nearest(width * scale)]
    if size[0] * size[1] > max_area:  # rounding up, or the one-multiple floor of the short side
        long = 0 if height >= width else 1
        size[long] = snap(max_area / size[1 - long])
    return size[0], size[1]


def strip_rows(width: int, budget: int = STRIP_PIXELS) -> int:
    return max(1, budget // max(width, 1))


def full_resolution_l(rgb: Tensor, budget: int = STRIP_PIXELS) -> Tensor:
    """uint8 or float RGB (3, H, W) -> L* (H, W) float32, computed strip by strip."""
    _, height, width = rgb.shape
    lightness = torch.empty(height, width, dtype=torch.float32, device=rgb.device)
    step = strip_rows(width, budget)
    for top in _strip_starts(height, step):
        lightness[top : top + step] = rgb_to_lab(rgb[:, top : top + step])[0]
    return lightness


def network_input(lightness: Tensor, size: tuple[int, int]) -> Tensor:
    """Full-resolution L* (H, W) -> the network's (1, 1, h, w) input in [0, 1], antialiased."""
    small = F.interpolate(lightness[None, None], size=size, mode="bilinear", align_corners=False, antialias=True)
    return small.div_(L_RANGE).clamp_(0.0, 1.0)


def _row_weights(out_rows: Tensor, in_height: int, out_height: int) -> tuple[Tensor, Tensor, Tensor]:
    """Source rows and weights of bilinear resizing (align_corners=False), as F.interpolate
    computes them, for the output rows ``out_rows``."""
    source = ((out_rows.to(torch.float64) + 0.5) * (in_height / out_height) - 0.5).clamp_min(0.0)
    upper = source.floor().long().clamp_max(in_height - 1)
    lower = (upper + 1).clamp_max(in_height - 1)
    weight = (source - upper).to(torch.float32)
    return upper, lower, weight


def check_upsampling(upsampling: str, name: str = "upsampling") -> str:
    if upsampling not in UPSAMPLINGS:
        raise ConfigError(
            f"{name} must be guided (chroma edges follow the photo's own L edges) or bilinear (plain resizing), got {upsampling!r}"
        )
    return upsampling


def widen_ab(ab_small: Tensor, width: int, lightness: Tensor | None = None, upsampling: str = "bilinear") -> Tensor:
    """ab at the working size (2, h, w) -> (C, h, ``width``): the first, horizontal half of
    resizing, small enough to keep whole (:func:`render_rows` does the rows). Bilinear: ab
    alone (C = 2). Guided: the filter's slope and offset against L (C = 4,
    :func:`~lit_colorize.guided.guided_coefficients`), fitted to ``lightness``, the photo's
    full-resolution L* (H, W). A map already at the photo's size has nothing to upsample: it
    is kept as predicted under either (the guided filter would smooth it)."""
    maps = ab_small.float()
    if check_upsampling(upsampling) == "guided":
        if lightness is None:
            raise ValueError("guided upsampling needs the photo's full-resolution L")
        if tuple(lightness.shape) == tuple(ab_small.shape[-2:]):
            return maps  # (2, H, W): bilinear at scale 1 is the identity too
        maps = guided_coefficients(low_resolution_guide(lightness, tuple(ab_small.shape[-2:])), maps)
    return F.interpolate(maps[None], size=(ab_small.shape[-2], width), mode="bilinear", align_corners=False)[0]


def render_rows(lightness_rows: Tensor, ab_wide: Tensor, top: int, height: int) -> Tensor:
    """Rows ``top`` .. ``top + len(lightness_rows)`` of the rendered photo (``height`` rows in
    all): their L* (n, W) joined with the ab of :func:`widen_ab`'s maps, taken by the bilinear
    row weights (for guided maps, ab = slope * L + offset), as uint8 RGB
    (3, n, W). Any split into rows gives the same pixels."""
    rows = torch.arange(top, top + lightness_rows.shape[0], device=lightness_rows.device)
    upper, lower, weight = _row_weights(rows, ab_wide.shape[-2], height)
    maps = torch.lerp(ab_wide[:, upper], ab_wide[:, lower], weight[None, :, None])
    ab = maps if maps.shape[0] == 2 else maps[:2] * lightness_rows[None] + maps[2:]
    lab = torch.cat([lightness_rows[None], ab], dim=0)
    return lab_to_rgb(lab).mul_(255.0).round_().to(torch.uint8)


def render(
    lightness: Tensor, ab_small: Tensor, budget: int = STRIP_PIXELS, out: Tensor | None = None, upsampling: str = "bilinear"
) -> Tensor:
    """Full-resolution L* (H, W) + ab at the working size (2, h, w) -> uint8 RGB (3, H, W).

    Bilinear: equal to ``F.interpolate`` of ab to (H, W), joined with L and converted; guided:
    equal to :func:`~lit_colorize.guided.guided_upsample`. Either is done a strip of rows at a
    time: the maps are first widened to (C, h, W), then each strip takes its rows from them
    by the same bilinear weights.
    """
    height, width = lightness.shape
    ab_wide = widen_ab(ab_small, width, lightness, upsampling)
    if out is None:
        out = torch.empty(3, height, width, dtype=torch.uint8, device=lightness.device)
    step = strip_rows(width, budget)
    for top in _strip_starts(height, step):
        out[:, top : top + step] = render_rows(lightness[top : top + step], ab_wide, top, height)
    return out


def colorize_full_resolution(
    rgb: Tensor,
    predict_ab: Callable[[Tensor, Sequence], list[Tensor]],
    temperatures: Sequence,
    short_side: int,
    multiple: int,
    budget: int = STRIP_PIXELS,
    upsampling: str = DEFAULT_UPSAMPLING,
) -> list[Tensor]:
    """One photo (uint8 RGB (3, H, W), color or gray) -> uint8 RGB (3, H, W) per temperature.

    ``predict_ab(l_norm, temperatures)`` maps the network input (1, 1, h, w) to one ab
    (1, 2, h, w) per temperature (or decoding); the photo's own L is kept at full resolution, and guides the
    ab's upsampling where ``upsampling`` is ``guided``.
    """
    lightness = full_resolution_l(rgb, budget)
    l_norm = network_input(lightness, working_size(*lightness.shape, short_side, multiple))
    return [render(lightness, ab[0], budget, upsampling=upsampling) for ab in predict_ab(l_norm, temperatures)]
