"""The page's reference photos (issue 30): a photo whose colors the result should hold.

A reference is read once, when it is uploaded: its global hint vector (the distribution of its
ab over the model's bins, :func:`~lit_colorize.global_hints.reference_distribution`, every pixel
counted) is kept under a random id, and its pixels are dropped, so a page that re-colorizes on
every slider move never reads the reference again. The page shows the distribution's most
likely bins beside the result as swatches, so the user sees which colors the model is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lit_colorize.app.photos import Photo
from lit_colorize.bins import ab_to_bin, bin_centers
from lit_colorize.color import lab_to_rgb, rgb_to_lab
from lit_colorize.colorizer import Colorizer

#: Swatches the page shows for a reference: its distribution's most likely bins.
SWATCHES = 5


@dataclass(frozen=True)
class Reference:
    """An uploaded reference: the network's global hint ``vector`` (Q + 2,), its ``swatches``
    (``{"color": "#rrggbb", "share": p}``, most likely first) and its ``size`` (width, height)."""

    vector: Tensor
    swatches: list[dict[str, object]]
    size: tuple[int, int]


def hex_color(rgb: Tensor) -> str:
    """RGB in [0, 1] (3,) -> ``#rrggbb``."""
    return "#{:02x}{:02x}{:02x}".format(*rgb.mul(255).round().to(torch.uint8).tolist())


def top_swatches(vector: Tensor, rgb: np.ndarray, grid_size: int, count: int = SWATCHES) -> list[dict[str, object]]:
    """The ``count`` most likely bins of a global hint's distribution, as colors a person knows:
    each bin's centre ab at the mean L* of the photo's (uint8 RGB (H, W, 3)) pixels in that bin,
    or at their overall mean L* for a bin none falls in (the smoothing gives neighbours weight);
    ``share``: the bin's probability in the vector."""
    distribution = vector[: grid_size * grid_size].float().cpu()
    top = distribution.topk(min(count, len(distribution)))
    lab = rgb_to_lab(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1))
    lightness, bins = lab[0].flatten().double(), ab_to_bin(lab[1:], grid_size).flatten()
    sums = torch.zeros(len(distribution), dtype=torch.float64).index_add_(0, bins, lightness)
    counts = torch.bincount(bins, minlength=len(distribution))
    mean_l = torch.where(counts > 0, sums / counts.clamp(min=1), lightness.mean())[top.indices]
    swatch_lab = torch.cat([mean_l[:, None].float(), bin_centers(grid_size)[top.indices]], dim=1)
    colors = lab_to_rgb(swatch_lab.T[:, :, None])[:, :, 0].T  # (count, 3)
    return [{"color": hex_color(color), "share": float(share)} for color, share in zip(colors, top.values)]


def read_reference(colorizer: Colorizer, photo: Photo) -> Reference:
    """A decoded upload -> its :class:`Reference`: the vector of all its pixels (what
    ``Colorizer.colorize(..., reference=...)`` gives the network), the swatches from its preview."""
    vector = colorizer.global_hint(reference=photo.rgb)
    assert vector is not None  # a reference was given
    return Reference(vector, top_swatches(vector, photo.preview, int(colorizer.module.hparams.grid_size)), photo.size)
