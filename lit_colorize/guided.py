"""Edge-aware chroma upsampling guided by the photo's own full-resolution L.

Why: the network's ab is a small map (a 768x512 photo's is 24x16 at working size 64 and
output stride 4). Bilinear resizing spreads each value over the upsampling factor, so colors
bleed across edges. Here, as in the guided filter (He, Sun and Tang 2010), ab is modelled in
each small window of the low-resolution map as a linear function of L, ``ab ~ a * L + b``;
as in the fast guided filter (He and Sun 2015) the slope ``a`` is solved at low resolution
and only it is upsampled. The full-resolution ab is then

    ab = bilinear(ab_small) + bilinear(a) * (L - bilinear(L_small))

that is, bilinear chroma plus the part of L's detail that the local model says carries
chroma. Where L is flat, or ab does not follow L, ``a`` is 0 and this is bilinear; at an edge
that ab follows, the chroma edge lands where L's edge is. The regularisation is edge-aware
(Li et al. 2015, weighted guided image filtering): ``eps`` is divided by the window's L
variance relative to the photo's mean, so strong edges are followed closely and texture is
smoothed. Full-resolution work is three bilinear maps and a multiply-add per pixel, done in
strips by :mod:`lit_colorize.fullres`.

Measured against bilinear and joint bilateral upsampling (Kopf et al. 2007) on held-out
photos with their true chroma (``benchmarks/upsampling.py``): the joint bilateral is many
times slower at full resolution and no better; the settings below were picked there.
kornia's ``box_blur`` gives the window means (kornia's ``guided_blur`` needs a
full-resolution input, which here is what we do not have).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.filters import box_blur
from torch import Tensor

#: Window radius in low-resolution pixels, and regularisation in (L* units)**2.
DEFAULT_RADIUS = 1
DEFAULT_EPS = 100.0
_VARIANCE_FLOOR = 1.0  # (L* units)**2: keeps the edge weight finite on flat photos


def low_resolution_guide(lightness: Tensor, size: tuple[int, int]) -> Tensor:
    """Full-resolution L* (H, W) -> L* at the ab map's size (h, w), area-averaged (antialiased):
    the L the network's ab belongs to."""
    small = F.interpolate(lightness[None, None].float(), size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return small[0, 0]


def guided_slope(guide: Tensor, ab: Tensor, radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS) -> Tensor:
    """The local slope of ab against L at low resolution: guide L* (h, w), ab (2, h, w) ->
    ``a`` (2, h, w), ``cov(L, ab) / (var(L) + eps / weight)`` over (2r+1)^2 windows (reflected at
    the borders), ``weight = (var + floor) / mean(var + floor)`` over the photo; 0 (bilinear) for a map of
    ``radius`` pixels or fewer on a side."""
    if min(guide.shape) <= radius:  # a map too small to reflect a window in holds no edge to follow
        return torch.zeros_like(ab, dtype=guide.dtype if guide.is_floating_point() else torch.float32)
    kernel = 2 * radius + 1
    l = guide.double()[None, None]  # the maps are small: float64 spares var = E[L^2] - E[L]^2 its cancellation
    ab = ab.double()[None]
    mean_l = box_blur(l, kernel)
    mean_ab = box_blur(ab, kernel)
    covariance = box_blur(l * ab, kernel) - mean_l * mean_ab
    variance = (box_blur(l * l, kernel) - mean_l * mean_l).clamp_min(0.0)
    weight = (variance + _VARIANCE_FLOOR) / (variance + _VARIANCE_FLOOR).mean()
    return (covariance / (variance + eps / weight))[0].to(guide.dtype if guide.is_floating_point() else torch.float32)


def upsample_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(maps[None].float(), size=tuple(size), mode="bilinear", align_corners=False)[0]


def guided_upsample(lightness: Tensor, ab_small: Tensor, radius: int = DEFAULT_RADIUS, eps: float = DEFAULT_EPS) -> Tensor:
    """L* (H, W) and ab (2, h, w) -> ab (2, H, W) in one piece; the strip renderer of
    :mod:`lit_colorize.fullres` gives the same values in bounded memory."""
    guide = low_resolution_guide(lightness, ab_small.shape[-2:])
    slope = guided_slope(guide, ab_small, radius, eps)
    size = tuple(lightness.shape)
    detail = lightness.float()[None] - upsample_maps(guide[None], size)
    return upsample_maps(ab_small, size) + upsample_maps(slope, size) * detail
