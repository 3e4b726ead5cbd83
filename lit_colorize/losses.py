"""Options from the literature for the classification loss (Zhang et al. 2016), each off by
default so the thesis's plain cross-entropy stays the baseline:

* class rebalancing: per-bin weights from the training colors' prior, smoothed and mixed with
  uniform, so rare (saturated) colors are not drowned by common (grayish) ones;
* soft-encoded targets: the k nearest bins with Gaussian weights instead of one hard bin;
* gamut-aware classes: only bins seen in training are classes (``bins.nearest_occupied``);
* zero weight for near-gray training images.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lit_colorize.bins import ab_to_bin, bin_centers


def rebalancing_weights(counts: Tensor, grid_size: int, sigma: float = 5.0, mix: float = 0.5) -> Tensor:
    """Zhang et al. (2016), eq. 4: w ~ ((1 - mix) p~ + mix / Q)^-1, normalized so that
    E_{p~}[w] = 1. p~ is the bins' empirical distribution smoothed with a Gaussian of
    ``sigma`` ab units over the bin centers; Q is the number of occupied bins (the gamut).
    Bins never seen in training get the weight of a bin with zero prior."""
    counts = counts.detach().double()
    if counts.sum() <= 0:
        raise ValueError("rebalancing needs the training colors' counts: build the bin table first")
    centers = bin_centers(grid_size, counts.device).double()
    kernel = torch.exp(-torch.cdist(centers, centers).pow(2) / (2 * sigma**2))
    prior = kernel @ (counts / counts.sum())
    prior = prior / prior.sum()
    classes = int((counts > 0).sum())
    weights = 1.0 / ((1.0 - mix) * prior + mix / classes)
    return (weights / (prior * weights).sum()).float()


def soft_targets(ab: Tensor, grid_size: int, k: int = 5, sigma: float = 5.0) -> tuple[Tensor, Tensor]:
    """The ``k`` bins nearest to each pixel's ab and their Gaussian weights (sum 1).

    ab (B, 2, H, W) in ab units -> (indices (B, k, H, W) long, weights (B, k, H, W)). The
    candidates are the 5 x 5 bins around the pixel's own, which hold its 5 nearest even in a
    corner of the grid (checked against a brute-force search); bins off the grid are never
    chosen.
    """
    if not 1 <= k <= 5:
        raise ValueError(f"soft targets take 1 to 5 nearest bins (Zhang et al. use 5), got k={k}")
    radius = 2
    step = 255.0 / grid_size
    own = ab_to_bin(ab, grid_size)
    row, col = own // grid_size, own % grid_size  # (B, H, W): a and b cell of the pixel
    offsets = torch.arange(-radius, radius + 1, device=ab.device)
    d_row, d_col = torch.meshgrid(offsets, offsets, indexing="ij")
    rows = row[:, None] + d_row.reshape(1, -1, 1, 1)  # (B, C, H, W)
    cols = col[:, None] + d_col.reshape(1, -1, 1, 1)
    on_grid = (rows >= 0) & (rows < grid_size) & (cols >= 0) & (cols < grid_size)
    center_a = (rows.float() + 0.5) * step - 128.0
    center_b = (cols.float() + 0.5) * step - 128.0
    distance2 = (ab[:, :1] - center_a).pow(2) + (ab[:, 1:] - center_b).pow(2)
    distance2 = distance2.masked_fill(~on_grid, float("inf"))
    nearest2, choice = distance2.topk(k, dim=1, largest=False)
    indices = (rows * grid_size + cols).gather(1, choice)
    weights = torch.exp(-(nearest2 - nearest2[:, :1]) / (2 * sigma**2))  # shifted for stability
    return indices, weights / weights.sum(dim=1, keepdim=True)
