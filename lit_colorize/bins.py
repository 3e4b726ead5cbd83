"""Quantized ab bins and the per-bin color table that turns bins back into colors.

The ab plane is cut into a ``grid_size x grid_size`` uniform grid over the thesis's
normalized ab in [0, 1] (``(ab + 128) / 255``): bin ``i`` on an axis covers
``[i / W, (i + 1) / W)`` (the last one includes 1). The flat bin index is
``index_a * W + index_b``. Everything here is tensor code that runs where the data is.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lit_colorize.color import AB_OFFSET, denormalize_ab, normalize_ab
from lit_colorize.errors import UserError

#: ab is histogrammed at 1-unit resolution for the bin modes: integer a, b in [-128, 127].
FINE_SIZE = 256


def _edges(grid_size: int, device: torch.device | None = None) -> Tensor:
    """Interior bin boundaries on the normalized ab axis."""
    return torch.arange(1, grid_size, device=device, dtype=torch.float32) / grid_size


def ab_to_bin(ab: Tensor, grid_size: int) -> Tensor:
    """ab in ab units, shape (*, 2, H, W) -> flat bin index, shape (*, H, W), int64."""
    if ab.ndim < 3 or ab.shape[-3] != 2:
        raise ValueError(f"expected ab with shape (*, 2, H, W), got {tuple(ab.shape)}")
    ab_norm = normalize_ab(ab.float()).clamp_(0.0, 1.0).contiguous()
    index = torch.bucketize(ab_norm, _edges(grid_size, ab.device), right=True)
    return index.select(-3, 0) * grid_size + index.select(-3, 1)


def bin_centers(grid_size: int, device: torch.device | None = None) -> Tensor:
    """Centers of the bins in ab units, shape (grid_size**2, 2), rows in flat-index order."""
    axis = denormalize_ab((torch.arange(grid_size, device=device, dtype=torch.float32) + 0.5) / grid_size)
    a, b = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)


def nearest_occupied(counts: Tensor, grid_size: int) -> Tensor:
    """For each bin, the occupied bin (count > 0) nearest to it, itself when occupied.
    Distances are taken in grid steps, exact integers, so ties go to the lowest bin index."""
    occupied = counts > 0
    if not occupied.any():
        raise ValueError("no occupied bins: build the bin table from training data first")
    grid = torch.arange(grid_size, device=counts.device)
    cell = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), dim=-1).reshape(-1, 2)
    distance = (cell[:, None, :] - cell[None, occupied, :]).pow(2).sum(-1)
    return torch.nonzero(occupied).squeeze(1)[distance.argmin(dim=1)]


def _stats_dtype(device: torch.device) -> torch.dtype:
    # Counts over whole datasets exceed float32's exact integers; MPS has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


class ColorHistogram:
    """Sufficient statistics of a color table, accumulated batch by batch on the device.

    Holds per-bin pixel counts and ab sums (for the means) and a 1-unit ab histogram (for
    the modes). All three are plain sums, so processes merge them with one all-reduce.
    """

    def __init__(self, grid_size: int, device: torch.device | str = "cpu") -> None:
        device = torch.device(device)
        dtype = _stats_dtype(device)
        self.grid_size = grid_size
        num_bins = grid_size * grid_size
        self.counts = torch.zeros(num_bins, dtype=dtype, device=device)
        self.ab_sums = torch.zeros(num_bins, 2, dtype=dtype, device=device)
        self.fine = torch.zeros(FINE_SIZE * FINE_SIZE, dtype=dtype, device=device)

    @property
    def num_bins(self) -> int:
        return self.grid_size * self.grid_size

    @torch.no_grad()
    def update(self, ab: Tensor, pixel_weight: Tensor | None = None) -> None:
        """Add the pixels of an ab batch (ab units, shape (*, 2, H, W)).

        ``pixel_weight`` (shape (*, H, W), 0 or 1 typically) masks pixels out, e.g. the
        samples a distributed sampler repeats to pad its last batch.
        """
        ab = ab.to(self.counts.device)
        bins = ab_to_bin(ab, self.grid_size).reshape(-1)
        values = ab.movedim(-3, -1).reshape(-1, 2).to(self.counts.dtype)
        cells = (ab.round().clamp(-AB_OFFSET, AB_OFFSET - 1) + AB_OFFSET).long()
        cells = (cells.select(-3, 0) * FINE_SIZE + cells.select(-3, 1)).reshape(-1)
        weight = None if pixel_weight is None else pixel_weight.reshape(-1).to(self.counts.dtype)
        self.counts += torch.bincount(bins, weights=weight, minlength=self.num_bins).to(self.counts.dtype)
        self.ab_sums.index_add_(0, bins, values if weight is None else values * weight[:, None])
        self.fine += torch.bincount(cells, weights=weight, minlength=FINE_SIZE * FINE_SIZE).to(self.fine.dtype)

    def tensors(self) -> list[Tensor]:
        """The sums, for a cross-process all-reduce."""
        return [self.counts, self.ab_sums, self.fine]


class ColorTable(nn.Module):
    """Per-bin colors (pixel count, mean ab, mode ab) kept as buffers.

    As buffers they travel with ``state_dict``, so every checkpoint restores the exact
    table. Before :meth:`fill` has run, both colors of a bin are its center.
    """

    counts: Tensor
    mean_ab: Tensor
    mode_ab: Tensor
    built: Tensor

    def __init__(self, grid_size: int = 18) -> None:
        super().__init__()
        if grid_size < 2:
            raise ValueError(f"grid_size must be >= 2, got {grid_size}")
        self.grid_size = grid_size
        centers = bin_centers(grid_size)
        self.register_buffer("counts", torch.zeros(grid_size * grid_size))
        self.register_buffer("mean_ab", centers.clone())
        self.register_buffer("mode_ab", centers.clone())
        self.register_buffer("built", torch.tensor(False))

    @property
    def num_bins(self) -> int:
        return self.grid_size * self.grid_size

    def extra_repr(self) -> str:
        return f"grid_size={self.grid_size}, num_bins={self.num_bins}, built={bool(self.built)}"

    @torch.no_grad()
    def fill(self, histogram: ColorHistogram) -> None:
        """Set counts, means and modes from accumulated statistics."""
        if histogram.grid_size != self.grid_size:
            raise ValueError(f"histogram has grid_size {histogram.grid_size}, table has {self.grid_size}")
        counts = histogram.counts
        if counts.sum() <= 0:
            raise ValueError("cannot build a color table from zero pixels: the training data is empty")
        occupied = counts > 0
        centers = bin_centers(self.grid_size, counts.device).to(counts.dtype)
        mean = torch.where(occupied[:, None], histogram.ab_sums / counts.clamp_min(1)[:, None], centers)
        mode = self._modes(histogram.fine, fallback=mean)

        # An empty bin borrows the colors of the occupied bin nearest to it in ab.
        nearest = nearest_occupied(counts, self.grid_size)
        mean = torch.where(occupied[:, None], mean, mean[nearest])
        mode = torch.where(occupied[:, None], mode, mode[nearest])

        self.counts.copy_(counts)
        self.mean_ab.copy_(mean)
        self.mode_ab.copy_(mode)
        self.built.fill_(True)

    def _modes(self, fine: Tensor, fallback: Tensor) -> Tensor:
        """Most frequent 1-unit ab value of each bin; ties go to the smallest (a, b)."""
        device = fine.device
        values = torch.arange(FINE_SIZE, device=device, dtype=torch.float32) - AB_OFFSET
        cell_a, cell_b = torch.meshgrid(values, values, indexing="ij")
        cell_ab = torch.stack([cell_a.reshape(-1), cell_b.reshape(-1)], dim=0)  # (2, 65536)
        cell_bin = ab_to_bin(cell_ab[:, None, :], self.grid_size).reshape(-1)
        best = torch.zeros(self.num_bins, dtype=fine.dtype, device=device)
        best = best.scatter_reduce(0, cell_bin, fine, reduce="amax", include_self=True)
        is_best = (fine > 0) & (fine == best[cell_bin])
        cell_index = torch.arange(fine.numel(), device=device)
        sentinel = torch.full((self.num_bins,), fine.numel(), device=device)
        first = sentinel.scatter_reduce(0, cell_bin[is_best], cell_index[is_best], reduce="amin", include_self=True)
        has_mode = first < fine.numel()
        mode = cell_ab.t()[first.clamp_max(fine.numel() - 1)].to(fallback.dtype)
        return torch.where(has_mode[:, None], mode, fallback)

    def bin_colors(self, temperature: float | Tensor) -> Tensor:
        """The thesis's decoding: ab = mode - T * (mode - mean); T=0 mode, T=1 mean. Shape (K, 2).
        Plain tensor arithmetic, so an exported graph (T a 0-dim tensor input) decodes the same way."""
        return self.mode_ab - temperature * (self.mode_ab - self.mean_ab)

    def decode_bins(self, bins: Tensor, temperature: float | Tensor) -> Tensor:
        """Bin indices (*, H, W) -> ab (*, 2, H, W)."""
        return self.bin_colors(temperature)[bins].movedim(-1, -3)

    def decode(self, logits: Tensor, temperature: float | Tensor) -> Tensor:
        """Class scores (B, K, H, W) -> ab of the most likely bin, interpolated by T."""
        return self.decode_bins(logits.argmax(dim=1), temperature)

    def annealed_mean(self, logits: Tensor, temperature: float | Tensor) -> Tensor:
        """Zhang et al. (2016): expectation of bin colors under softmax(log p / T).

        ``logits`` are log-probabilities up to a constant, so softmax(logits / T) is the
        annealed distribution. T -> 0 is the mode of the distribution, T = 1 its mean.
        A number T is decided here; a tensor T (an exported graph's input) is traced without
        branching: both results are computed and T <= 0 selects the most likely bin's mean.
        """
        if not isinstance(temperature, Tensor):
            if temperature <= 0:
                return self.decode_bins(logits.argmax(dim=1), 1.0)
            return self._expectation(logits, temperature)
        positive = temperature > 0
        annealed = self._expectation(logits, torch.where(positive, temperature, torch.ones_like(temperature)))
        return torch.where(positive, annealed, self.decode_bins(logits.argmax(dim=1), 1.0))

    def _expectation(self, logits: Tensor, temperature: float | Tensor) -> Tensor:
        probs = torch.softmax(logits.float() / temperature, dim=1)
        return torch.einsum("bkhw,kc->bchw", probs, self.mean_ab.to(probs.dtype))


class MissingColorTableError(UserError, RuntimeError):
    """A classification model whose bin color table was never built: its bins have no colors."""


def require_color_table(built: Tensor | bool | None, source: str) -> None:
    """Raise :class:`MissingColorTableError` unless ``built`` (a classifier's ``color_table.built``;
    None: absent from its checkpoint) is true."""
    if built is None or not bool(built):
        raise MissingColorTableError(
            f"{source} is a classification model without a bin color table, so its bins cannot be turned "
            "into colors. Train it with the ColorTableBuilder callback (configs/common/train.yaml, which every "
            "training config includes), or fine-tune it for a step with that callback to build the table, "
            "then use the new checkpoint."
        )
