"""The training loss of both heads, in one place: ``ColorizationModule.compute_loss`` assembles
it from these parts (the chunked head computes the same cross-entropy without the logits).

Options from the literature for the classification loss (Zhang et al. 2016), each off by
default so the thesis's plain cross-entropy stays the baseline:

* class rebalancing: per-bin weights from the training colors' prior, smoothed and mixed with
  uniform, so rare (saturated) colors are not drowned by common (grayish) ones;
* soft-encoded targets: the k nearest bins with Gaussian weights instead of one hard bin;
* gamut-aware classes: only bins seen in training are classes (``bins.nearest_occupied``);
* zero weight for near-gray training images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lit_colorize.bins import ab_to_bin, bin_centers
from lit_colorize.chunked_head import pixel_major
from lit_colorize.color import near_gray_images, normalize_ab


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


@dataclass(frozen=True)
class ClassLossOptions:
    """The classification loss's options (see ``ColorizationModule``); all off: plain cross-entropy."""

    grid_size: int
    soft_targets: int = 0
    soft_sigma: float = 5.0
    gamut_classes: bool = False
    class_rebalancing: bool = False


class ClassTargets(NamedTuple):
    """Targets in the form both cross-entropies take (full logits and the chunked head)."""

    bins: Tensor  # (B, H, W) one class per pixel, or (B, k, H, W) soft-encoded
    weights: Tensor | None  # (B, k, H, W) Gaussian weights of soft targets, else None (weight 1)
    pixel_weights: Tensor | None  # (B, H, W) rebalancing times image weights, or None


@dataclass
class LossOutput:
    """What one step of training, validation or test computes from a :class:`PreparedBatch`."""

    loss: Tensor
    predicted_bins: Tensor  # (B, h, w): the most likely bin (regression: the bin of its ab)
    output: Tensor | None = None  # logits or normalized ab; None when the fused head never made them


def image_weights(target_ab: Tensor, gray_image_threshold: float) -> Tensor:
    """(B,) loss weight 0 for near-gray images, 1 for the others."""
    return (~near_gray_images(target_ab, gray_image_threshold)).float()


def class_targets(
    bins: Tensor,
    target_ab: Tensor | None,
    options: ClassLossOptions,
    class_of_bin: Tensor,
    class_weights: Tensor,
    per_image: Tensor | None = None,
) -> ClassTargets:
    """The targets of each pixel: its bin, mapped to its class (``gamut_classes``: the nearest
    bin seen in training), or its ``soft_targets`` nearest bins; weighted by the class's
    rebalancing weight and the image's weight ``per_image`` (B,). Plain: ``(bins, None, None)``;
    only soft targets read ``target_ab``."""
    classes = class_of_bin[bins] if options.gamut_classes else bins
    targets, target_weights = classes, None
    if options.soft_targets:
        if target_ab is None:
            raise ValueError("soft targets need the batch's target_ab")
        indices, target_weights = soft_targets(target_ab, options.grid_size, options.soft_targets, options.soft_sigma)
        targets = class_of_bin[indices]
    pixel_weights = class_weights[classes] if options.class_rebalancing else None
    if per_image is not None:
        per_pixel = per_image[:, None, None].expand_as(classes)
        pixel_weights = per_pixel if pixel_weights is None else pixel_weights * per_pixel
    return ClassTargets(targets, target_weights, pixel_weights)


def classification_loss(logits: Tensor, targets: ClassTargets) -> Tensor:
    """Cross-entropy over full logits (B, K, H, W): the reference that
    ``chunked_head_cross_entropy`` computes without the logits."""
    bins, target_weights, pixel_weights = targets
    if target_weights is None and logits.is_contiguous(memory_format=torch.channels_last):
        # Pixel-major rows are a view of channels_last logits: no copy, contiguous reductions.
        pixel_loss = F.cross_entropy(pixel_major(logits), bins.reshape(-1), reduction="none").view_as(bins)
    elif target_weights is None:
        pixel_loss = F.cross_entropy(logits, bins, reduction="none")
    else:
        pixel_loss = -(target_weights * logits.float().log_softmax(dim=1).gather(1, bins)).sum(dim=1)
    return pixel_loss.mean() if pixel_weights is None else (pixel_loss * pixel_weights).mean()


def regression_loss(output: Tensor, target_ab: Tensor, per_image: Tensor | None = None) -> Tensor:
    """The baseline's MSE between the predicted and the true normalized ab, images weighted by ``per_image``."""
    pixel_loss = F.mse_loss(output, normalize_ab(target_ab), reduction="none").mean(dim=1)
    return pixel_loss.mean() if per_image is None else (pixel_loss * per_image[:, None, None]).mean()
