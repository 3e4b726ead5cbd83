"""Global hints (Zhang et al. 2017's global-hints network): the whole photo's colors, not one place's.

A global hint tells the network which colors the photo should hold: a distribution over the
model's own ab bins (its output space), smoothed like the rebalancing prior (a Gaussian of
:data:`SMOOTHING_SIGMA` ab units over the bin centres), and the mean saturation (chroma). The
network reads it as one vector, :func:`global_hint_vector`: the ``grid_size**2`` distribution,
the saturation, and a "none" flag that is 1 (and the rest 0) when no hint is given, so "no hint"
is never confused with "a gray photo".

Users give it as a reference photo (:func:`reference_distribution`, any size) or a palette of
``#rrggbb`` colors with weights (:func:`palette_distribution`); while training it is simulated
from the truth (:func:`sample_global_hints`): with probability p the image's own distribution,
half of those over a random sub-rectangle so the network learns to follow proportions loosely
rather than copy them; otherwise none (Zhang et al.'s protocol gives it half the time).
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from lit_colorize.bins import ab_to_bin, bin_centers
from lit_colorize.color import rgb_to_lab
from lit_colorize.errors import ConfigError, UserError
from lit_colorize.fullres import STRIP_PIXELS, strip_rows
from lit_colorize.imageio import read_image
from lit_colorize.user_hints import color_ab, parse_color, shown

#: The distribution's smoothing in ab units: the rebalancing prior's (``rebalancing_sigma``'s default).
SMOOTHING_SIGMA = 5.0
#: Chroma is given to the network divided by this (sRGB chroma reaches about 134).
CHROMA_SCALE = 128.0
#: The most palette colors one hint takes (a palette is a handful of chips, not a photo).
MAX_PALETTE_COLORS = 256


class GlobalHintError(UserError, ValueError):
    """A reference or palette that cannot be used; the message says which and why."""


class GlobalHint(NamedTuple):
    """One photo's global hint: ``distribution`` (Q,) over the bins (sums to 1) and ``saturation``,
    the mean chroma in ab units (0-dim)."""

    distribution: Tensor
    saturation: Tensor


def vector_size(grid_size: int) -> int:
    """Length of :func:`global_hint_vector`: the distribution, the saturation, the none flag."""
    return grid_size * grid_size + 2


def bin_kernel(grid_size: int, sigma: float = SMOOTHING_SIGMA, device: torch.device | str | None = None) -> Tensor:
    """(Q, Q) Gaussian weights ``exp(-d^2 / 2 sigma^2)`` between bin centres, d in ab units."""
    centers = bin_centers(grid_size, device).double()
    return torch.exp(-torch.cdist(centers, centers).pow(2) / (2 * sigma**2)).float()


def smooth(counts: Tensor, grid_size: int, sigma: float = SMOOTHING_SIGMA) -> Tensor:
    """Counts or weights per bin (*, Q) -> a distribution (*, Q): normalized, Gaussian-smoothed
    over the bin centres, normalized again (the rebalancing prior's recipe)."""
    counts = counts.float()
    spread = (counts / counts.sum(-1, keepdim=True)) @ bin_kernel(grid_size, sigma, counts.device)
    return spread / spread.sum(-1, keepdim=True)


def ab_distribution(ab: Tensor, grid_size: int, sigma: float = SMOOTHING_SIGMA, weight: Tensor | None = None) -> Tensor:
    """ab (B, 2, H, W) in ab units -> (B, Q): the smoothed, normalized histogram of its pixels at
    the bins. ``weight`` (B, H, W): per-pixel weights (a region's mask); each image needs some."""
    bins = ab_to_bin(ab, grid_size).flatten(1)
    values = torch.ones_like(bins, dtype=torch.float32) if weight is None else weight.flatten(1).float()
    counts = values.new_zeros(ab.shape[0], grid_size * grid_size).scatter_add_(1, bins, values)
    return smooth(counts, grid_size, sigma)


def mean_chroma(ab: Tensor, weight: Tensor | None = None) -> Tensor:
    """(B,) each image's mean chroma ``sqrt(a^2 + b^2)`` in ab units, weighted by ``weight`` (B, H, W)."""
    chroma = torch.linalg.vector_norm(ab.float(), dim=1).flatten(1)
    if weight is None:
        return chroma.mean(1)
    weight = weight.flatten(1).float()
    return (chroma * weight).sum(1) / weight.sum(1)


def global_hint_vector(hint: GlobalHint | None, grid_size: int, device: torch.device | str | None = None) -> Tensor:
    """The network's global input (Q + 2,): distribution, saturation / :data:`CHROMA_SCALE`, and
    the none flag; None gives zeros and the flag 1."""
    vector = torch.zeros(vector_size(grid_size), device=device)
    if hint is None:
        vector[-1] = 1.0
        return vector
    vector[:-2] = hint.distribution.to(vector)
    vector[-2] = hint.saturation.to(vector) / CHROMA_SCALE
    return vector


def no_hint_vectors(batch: int, grid_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """(B, Q + 2) "no global hint" for every image of a batch."""
    vectors = torch.zeros(batch, vector_size(grid_size), device=device, dtype=dtype)
    vectors[:, -1] = 1.0
    return vectors


def reference_distribution(rgb: Tensor, grid_size: int, sigma: float = SMOOTHING_SIGMA, budget: int = STRIP_PIXELS) -> GlobalHint:
    """A reference photo (uint8 or float RGB (3, H, W), any size) -> its :class:`GlobalHint`,
    every pixel counted; Lab is computed a strip of rows at a time, so a large photo costs no
    more memory than :func:`~lit_colorize.fullres.full_resolution_l`."""
    if rgb.ndim != 3 or rgb.shape[0] != 3 or rgb.shape[1] < 1 or rgb.shape[2] < 1:
        raise GlobalHintError(f"a reference photo must be RGB (3, H, W) with pixels, got shape {tuple(rgb.shape)}")
    counts = torch.zeros(grid_size * grid_size, dtype=torch.float64, device=rgb.device)
    chroma = torch.zeros((), dtype=torch.float64, device=rgb.device)
    step = strip_rows(rgb.shape[2], budget)
    for top in range(0, rgb.shape[1], step):
        ab = rgb_to_lab(rgb[:, top : top + step])[1:]
        counts += torch.bincount(ab_to_bin(ab, grid_size).flatten(), minlength=counts.numel())
        chroma += torch.linalg.vector_norm(ab, dim=0).double().sum()
    return GlobalHint(smooth(counts, grid_size, sigma), (chroma / (rgb.shape[1] * rgb.shape[2])).float())


def reference_file_vector(path: str | Path, grid_size: int) -> Tensor:
    """The global hint vector (Q + 2,) of a reference photo file, read once per version of the
    file (predict's ``--data.reference`` serves every photo of a run); a file that cannot be
    read is a one-line :class:`~lit_colorize.errors.UserError` naming it."""
    try:
        stat = Path(path).stat()
    except OSError as error:
        raise GlobalHintError(f"cannot read reference photo {path}: {error.strerror}") from None
    return _file_vector(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size, grid_size).clone()


@functools.lru_cache(maxsize=4)
def _file_vector(path: str, modified: int, size: int, grid_size: int) -> Tensor:
    """Cached by path, modification time and size: a file changed on disk is read again."""
    return global_hint_vector(reference_distribution(read_image(path).rgb, grid_size), grid_size)


def palette_distribution(
    colors: Sequence[Any], weights: Sequence[float] | None = None, grid_size: int = 18, sigma: float = SMOOTHING_SIGMA
) -> GlobalHint:
    """A palette (``["#2a6fdb", (200, 162, 122), ...]``, each color's ab at its own L) and its
    ``weights`` (None: equal; any positive scale) -> a :class:`GlobalHint`: each color's weight at
    its bin, smoothed; the saturation is the colors' weighted mean chroma."""
    if isinstance(colors, (str, bytes)) or not isinstance(colors, Sequence) or not 1 <= len(colors) <= MAX_PALETTE_COLORS:
        raise GlobalHintError(
            f"palette must be a list of 1 to {MAX_PALETTE_COLORS} colors like ['#2a6fdb', '#c8a27a'], got {shown(colors)}"
        )
    ab = []
    for number, color in enumerate(colors, start=1):
        try:
            ab.append(color_ab(parse_color(color)))
        except ValueError as error:
            raise GlobalHintError(f"palette color {number}: {error}") from None
    shares = _checked_weights(weights, len(colors))
    table = torch.tensor(ab, dtype=torch.float32).T[None, :, :, None]  # (1, 2, N, 1): N pixels
    counts = torch.zeros(grid_size * grid_size).index_add_(0, ab_to_bin(table, grid_size).flatten(), shares)
    saturation = (torch.linalg.vector_norm(table[0, :, :, 0], dim=0) * shares).sum() / shares.sum()
    return GlobalHint(smooth(counts, grid_size, sigma), saturation)


def _finite_number(value: Any) -> bool:
    try:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # a 400-digit int
        return False


def _checked_weights(weights: Sequence[float] | None, count: int) -> Tensor:
    """The palette's weights as a float tensor (None: all 1); GlobalHintError for any that cannot weigh."""
    if weights is None:
        return torch.ones(count)
    listed = weights.tolist() if isinstance(weights, (np.ndarray, Tensor)) else weights
    if isinstance(listed, (str, bytes)) or not isinstance(listed, Sequence) or len(listed) != count:
        raise GlobalHintError(f"weights must be a list of {count} numbers, one per palette color, got {shown(weights)}")
    for number, weight in enumerate(listed, start=1):
        if not _finite_number(weight) or weight < 0:
            raise GlobalHintError(f"palette weight {number} must be a finite number, 0 or more, got {shown(weight)}")
    shares = torch.tensor([float(w) for w in listed], dtype=torch.float64)
    if not 0 < float(shares.sum()) < math.inf:
        raise GlobalHintError(f"palette weights must not all be 0 (nor sum past a float's range), got {shown(weights)}")
    return (shares / shares.sum()).float()


@dataclass(frozen=True)
class GlobalHintSampling:
    """How training simulates global hints: ``probability`` of giving one (else none);
    ``region_share`` of those computed over a random sub-rectangle, each side a uniform share
    in [``min_region_side``, 1] of the image's, placed uniformly."""

    probability: float = 0.5
    region_share: float = 0.5
    min_region_side: float = 0.25

    def __post_init__(self) -> None:
        for name in ("probability", "region_share", "min_region_side"):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or not 0.0 <= value <= 1.0 or (name == "min_region_side" and value == 0):
                low = "(0, 1]" if name == "min_region_side" else "[0, 1]"
                raise ConfigError(f"global hint {name} must be a number in {low}, got {value!r}")


def _spans(count: int, side: int, share: Tensor, regional: Tensor, generator: torch.Generator | None) -> Tensor:
    """(B, side) bool: each image's rows (or columns) inside its region; all for a whole-image hint."""
    length = torch.where(regional, (share * side).floor().clamp(1, side), torch.full_like(share, side))
    start = ((side - length + 1) * torch.rand(count, generator=generator, device=share.device)).floor()
    start = torch.minimum(start, side - length)  # rand * n may round up to n
    index = torch.arange(side, device=share.device)
    return (index >= start[:, None]) & (index < (start + length)[:, None])


def sample_global_hints(
    ab: Tensor, grid_size: int, sampling: GlobalHintSampling, generator: torch.Generator | None = None
) -> Tensor:
    """Simulated global hints (B, Q + 2) for a training batch's true ab (B, 2, H, W), drawn on its
    device with no host read: the truth's own distribution and saturation with probability
    ``sampling.probability`` (a share of them over a sub-rectangle), else the none vector. Draw
    order: given, regional, row share, column share, row start, column start."""
    batch, _, height, width = ab.shape
    device = ab.device
    where = generator.device if generator is not None else device
    given = torch.rand(batch, generator=generator, device=where) < sampling.probability
    regional = torch.rand(batch, generator=generator, device=where) < sampling.region_share
    low = sampling.min_region_side
    shares = low + (1 - low) * torch.rand(2, batch, generator=generator, device=where)
    rows = _spans(batch, height, shares[0], regional, generator)
    cols = _spans(batch, width, shares[1], regional, generator)
    region = (rows[:, :, None] & cols[:, None, :]).to(device=device, dtype=torch.float32)
    given = given.to(device)[:, None]
    distribution = ab_distribution(ab, grid_size, weight=region)
    saturation = mean_chroma(ab, region)[:, None] / CHROMA_SCALE
    return torch.cat([distribution * given, saturation * given, (~given).float()], dim=1)
