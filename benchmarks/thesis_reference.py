"""The ORIGINAL ColorUNet data pipeline (Billaut et al. 2018), re-implemented as a speed reference.

This module is deliberately slow. It mirrors how the thesis code prepared data: every
sample is converted with ``skimage.color.rgb2lab`` inside ``Dataset.__getitem__`` and binned
pixel by pixel with ``np.vectorize`` over a Python function; decoding and the bin table
work the same way. It exists only so ``benchmarks/throughput.py`` can measure what
lit-colorize's tensor path (Lab conversion and binning on the device, after the batch
transfer) buys. Do not use it for training; nothing in ``lit_colorize`` imports it.

Conventions match ``lit_colorize``: L is fed as L / 100, ab is normalized to
(ab + 128) / 255, and the flat bin of (a_norm, b_norm) on a W x W grid is
``int(min(a_norm * W, W - 1)) * W + int(min(b_norm * W, W - 1))``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from skimage.color import lab2rgb, rgb2lab
from torch import Tensor
from torch.utils.data import Dataset

AB_OFFSET = 128.0
AB_RANGE = 255.0
L_RANGE = 100.0


def to_hwc(image: np.ndarray) -> np.ndarray:
    """One RGB image, HWC or CHW -> HWC (the layout skimage expects)."""
    if image.ndim != 3:
        raise ValueError(f"expected one RGB image with 3 dimensions, got shape {image.shape}")
    if image.shape[-1] == 3:
        return image
    if image.shape[0] == 3:
        return np.transpose(image, (1, 2, 0))
    raise ValueError(f"expected an RGB image in HWC or CHW layout, got shape {image.shape}")


def thesis_bin(a_norm: float, b_norm: float, grid_size: int) -> int:
    """The thesis's per-pixel binning of normalized ab; called once per pixel via np.vectorize."""
    w = grid_size
    return int(min(a_norm * w, w - 1)) * w + int(min(b_norm * w, w - 1))


_vectorized_bin = np.vectorize(thesis_bin, otypes=[np.int64], excluded={"grid_size"})


def thesis_lab(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 RGB image -> (L / 100, a_norm, b_norm), each (H, W) float64, via skimage."""
    lab = rgb2lab(to_hwc(image))
    return lab[..., 0] / L_RANGE, (lab[..., 1] + AB_OFFSET) / AB_RANGE, (lab[..., 2] + AB_OFFSET) / AB_RANGE


class ThesisDataset(Dataset):
    """Per-sample skimage Lab conversion and np.vectorize binning, as in the thesis.

    All the color work happens on the CPU inside ``__getitem__``, once per sample per
    epoch; this is the cost lit-colorize moves onto the device as batched tensor code.
    """

    def __init__(self, images: np.ndarray | Tensor, grid_size: int = 18) -> None:
        self.images = images.numpy() if isinstance(images, Tensor) else np.asarray(images)
        if self.images.dtype != np.uint8:
            raise TypeError(f"expected uint8 images, got {self.images.dtype}")
        self.grid_size = grid_size

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        l_norm, a_norm, b_norm = thesis_lab(self.images[index])
        bins = _vectorized_bin(a_norm, b_norm, grid_size=self.grid_size)
        return torch.from_numpy(l_norm[None].astype(np.float32)), torch.from_numpy(bins.astype(np.int64))


@dataclass
class ThesisColorTable:
    """Per-bin pixel counts, mean ab and mode ab (ab units), each indexed by flat bin."""

    grid_size: int
    counts: np.ndarray  # (K,)
    mean_ab: np.ndarray  # (K, 2)
    mode_ab: np.ndarray  # (K, 2)


def _grid_distance2(j: int, k: int, grid_size: int) -> int:
    """Squared distance of two bin centers in grid steps (exact, so ties break to the lower bin)."""
    ja, jb = divmod(j, grid_size)
    ka, kb = divmod(k, grid_size)
    return (ja - ka) ** 2 + (jb - kb) ** 2


def build_thesis_table(images: Iterable[np.ndarray], grid_size: int = 18) -> ThesisColorTable:
    """The thesis's bin table: per image rgb2lab + np.vectorize binning, then per-bin Python loops.

    A bin's mean is the mean ab of its pixels; its mode is the most frequent ab rounded to
    1 unit (ties to the smallest (a, b)). An empty bin borrows the colors of the occupied
    bin whose center is nearest. Correct but naive, on purpose: it is a speed reference.
    """
    all_bins, all_ab = [], []
    for image in images:
        _, a_norm, b_norm = thesis_lab(np.asarray(image))
        all_bins.append(_vectorized_bin(a_norm, b_norm, grid_size=grid_size).reshape(-1))
        all_ab.append(np.stack([a_norm * AB_RANGE - AB_OFFSET, b_norm * AB_RANGE - AB_OFFSET], axis=-1).reshape(-1, 2))
    if not all_bins:
        raise ValueError("cannot build a color table from zero images")
    bins = np.concatenate(all_bins)
    ab = np.concatenate(all_ab)

    num_bins = grid_size * grid_size
    counts = np.zeros(num_bins)
    mean_ab = np.zeros((num_bins, 2))
    mode_ab = np.zeros((num_bins, 2))
    for k in range(num_bins):
        pixels = ab[bins == k]
        counts[k] = len(pixels)
        if not len(pixels):
            continue
        sum_a = sum_b = 0.0
        for a, b in pixels:
            sum_a += a
            sum_b += b
        mean_ab[k] = (sum_a / len(pixels), sum_b / len(pixels))
        # round() is half-to-even, like torch.round; clamp to the 1-unit grid [-128, 127].
        rounded = Counter((min(max(round(a), -128), 127), min(max(round(b), -128), 127)) for a, b in pixels)
        mode_ab[k] = min(rounded.items(), key=lambda item: (-item[1], item[0]))[0]

    occupied = [k for k in range(num_bins) if counts[k] > 0]
    if not occupied:
        raise ValueError("cannot build a color table from zero pixels")
    for k in range(num_bins):
        if counts[k] > 0:
            continue
        nearest = min(occupied, key=lambda j: _grid_distance2(j, k, grid_size))
        mean_ab[k] = mean_ab[nearest]
        mode_ab[k] = mode_ab[nearest]
    return ThesisColorTable(grid_size, counts, mean_ab, mode_ab)


def thesis_decode(logits: np.ndarray, l_norm: np.ndarray, table: ThesisColorTable, temperature: float) -> np.ndarray:
    """Logits (B, K, H, W) and L / 100 (B, 1, H, W) -> RGB (B, H, W, 3) in [0, 1], the thesis way.

    argmax over bins, then a per-pixel Python lookup (np.vectorize) of
    ab = mode - T * (mode - mean), then ``skimage.color.lab2rgb`` one image at a time.
    """
    mode, mean = table.mode_ab, table.mean_ab

    def bin_to_ab(k: int) -> tuple[float, float]:
        return (
            mode[k, 0] - temperature * (mode[k, 0] - mean[k, 0]),
            mode[k, 1] - temperature * (mode[k, 1] - mean[k, 1]),
        )

    lookup = np.vectorize(bin_to_ab, otypes=[np.float64, np.float64])
    bins = np.argmax(logits, axis=1)
    out = np.empty((*bins.shape, 3))
    for i in range(len(bins)):
        a, b = lookup(bins[i])
        lab = np.stack([l_norm[i, 0] * L_RANGE, a, b], axis=-1)
        out[i] = lab2rgb(lab)
    return out
