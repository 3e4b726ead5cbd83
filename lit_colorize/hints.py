"""Simulated colour hints for user-guided colorization (Zhang et al. 2017), drawn on the device.

A user-guided network sees, besides L, sparse ab "hints" and a mask that says where they are.
Real clicks cannot be collected for a million training images, so, as in Zhang, Zhu et al.,
"Real-Time User-Guided Image Colorization with Learned Deep Priors" (SIGGRAPH 2017), they are
simulated from the ground truth: a random number of square patches per image, each revealing the
mean ab of the truth over the patch. The network learns to trust a hint where it is and to spread
it along edges, and, from the images that get none, to stay a good automatic colorizer.

What follows their code (richzhang/colorization-pytorch, ``util/util.py``,
``add_color_patches_rand_gt``, called by ``get_colorization_data`` with ``p=opt.sample_p``):

* the count is geometric: one more hint with probability ``1 - p``, so
  ``P(N = n) = (1 - p)^n p``; ``p = 1/8`` (mean 7) when training with hints, and their
  ``--sample_p 1.0`` (no hint ever) is the automatic stage;
* each patch is square, its side drawn uniformly from ``sample_Ps`` = 1..9;
* location ``"normal"``: the patch's top row is ``N(n/2, n/4)`` clipped to the ``n = H - P + 1``
  legal rows, floored (same for columns), so patch centres spread around the image centre with a
  standard deviation of a quarter of the free range; ``"uniform"``: every legal top-left alike;
* the hint is the patch's per-channel mean ab (their ``use_avg=True``); the mask is 1 on every
  hinted pixel; a later patch overwrites an earlier one where they overlap.

Where this deviates:

* Scale. They divide ab by ``ab_norm = 110`` (hint 0 = gray = no hint) and centre the mask,
  ``mask_B -= mask_cent`` with ``mask_cent = 0.5``, so the network sees -0.5 / +0.5 (their README
  asks ``--mask_cent 0`` for the caffe weights). Here hints are on the network's own ab scale,
  ``(ab + 128) / 255`` (:func:`lit_colorize.color.normalize_ab`), 0 where there is no hint, and the
  mask is {0, 1}: a gray hint (0.502, mask 1) and no hint (0, mask 0) differ in both channels, and
  the first convolution's bias does whatever centring helps.
* Default location ``"uniform"``, not their ``"normal"``; see :class:`HintSampling`.
* Images smaller than a patch: the patch is clipped to the image (theirs assumes it fits).
* Vectorised: counts, sizes and places for the whole batch are drawn at once with a
  ``torch.Generator`` on the batch's device, every patch of every image is painted by one
  ``scatter_reduce`` (the highest slot index wins, which is "later overwrites earlier"), and means
  are exact sums over the patch's pixels. No Python loop per hint, no host read.
* The count is capped at ``max_hints`` (their while loop has no cap): the draws are fixed-size
  tensors, and the cap is checked to cut off at most :data:`MAX_CLIPPED_MASS` of the law.

The benchmark of their ``test_sweep.py`` (PSNR against the number of hints) is
:func:`random_hints_from_truth` with :data:`SWEEP_COUNTS`: exactly N hints per image, each a
6x6 patch (``opt.sample_Ps = [6]``), placed by the same default ``samp='normal'`` as in training
(not uniformly), on 1000 ImageNet images resized to 256x256, gray ones kept (``ab_thresh=0``),
scored by the PSNR of the regression output's RGB against the truth's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Literal, NamedTuple, get_args

import torch
from torch import Tensor

from lit_colorize.color import normalize_ab
from lit_colorize.errors import ConfigError

Location = Literal["normal", "uniform"]
LOCATIONS: tuple[str, ...] = get_args(Location)

# A hint reveals one local colour; each patch gathers side^2 pixels, so the side stays small.
MAX_PATCH_SIZE = 32
# The cap may cut off at most this much of the geometric law, P(N > max_hints) = (1 - p)^(cap + 1).
MAX_CLIPPED_MASS = 1e-3
# Hint counts of colorization-pytorch's test_sweep.py: unique(int(round(10 ** arange(-0.1, 2.8, 0.1)))),
# 10^-0.1 .. 10^2.7, with the first (10^-0.1, which rounds to 1) set to 0, i.e. automatic colorization.
SWEEP_COUNTS: tuple[int, ...] = (
    0, 1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 32, 40, 50, 63, 79, 100, 126, 158, 200, 251, 316, 398, 501,
)  # fmt: skip
SWEEP_PATCH = 6
#: A pixel "moved" when a hint changed its ab by more than this many ab units (issue 31's locality).
MOVED_AB = 5.0


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _is_count(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def smallest_cap(stop_probability: float) -> int:
    """The least ``max_hints`` that cuts off at most :data:`MAX_CLIPPED_MASS` of the geometric law."""
    if stop_probability >= 1.0:
        return 1
    return max(1, math.ceil(math.log(MAX_CLIPPED_MASS) / math.log1p(-stop_probability)) - 1)


@dataclass(frozen=True)
class HintSampling:
    """How many hints, how large and where; validated on construction (:class:`ConfigError`).

    * ``stop_probability`` p: an image gets n hints with probability ``(1 - p)^n p`` (mean
      ``1/p - 1``; 7 at the default 1/8, Zhang et al.'s value). 1 means never a hint.
    * ``max_hints``: the cap; draws above it count as the cap. 128 cuts off ``(7/8)^129``, about
      3e-8 of the law at p = 1/8, i.e. nothing in any training run, and costs little: the batch's
      patches are tensors of ``B x 128 x 81`` indices. Must cut off at most 1e-3 of the law
      (p = 1/8 needs at least 51; see :func:`smallest_cap`).
    * ``patch_sizes``: the square patch's side, drawn uniformly from these (Zhang: 1..9).
    * ``no_hint_share``: images forced to have no hint, on top of the geometric law's own
      ``P(N = 0) = p``, so ``P(N = 0) = s + (1 - s) p``. Default 0: the law already gives 1 image
      in 8 no hint, and with 7 hints of ~32 pixels on average a 176x176 image is still about 99%
      unhinted, so automatic colorization keeps being trained almost everywhere (Zhang's hint
      stage uses the same law, no extra share). Raise it to fine-tune an automatic model whose
      hint-free quality must not drop, e.g. 0.25.
    * ``location``: ``"uniform"`` (default) puts every legal patch position alike; ``"normal"``
      is Zhang's: patch centres ~ N(image centre, a quarter of the free range), clipped. Why
      uniform here: their centre prior assumes object-centred ImageNet photos and users who click
      the middle; in landscapes the colours a user corrects (sky, water, foreground fields) lie at
      the top and bottom edges, where "normal" puts a seventh of the centre's density, and its
      clip stacks about 2.3% of the hints on each border row and column. Uniform trains the
      network to take a hint anywhere it may be clicked, near the zero-padded border too. Use
      ``"normal"`` to reproduce Zhang's training; their sweep benchmark uses it as well.
    """

    stop_probability: float = 1 / 8
    max_hints: int = 128
    patch_sizes: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9)
    no_hint_share: float = 0.0
    location: Location = "uniform"

    def __post_init__(self) -> None:
        p = self.stop_probability
        if not _is_number(p) or not 0.0 < p <= 1.0:
            raise ConfigError(
                f"stop_probability must be a number in (0, 1], got {p!r}: the chance to stop adding hints, "
                "1/8 gives 7 hints on average, 1 gives none"
            )
        if not _is_number(self.no_hint_share) or not 0.0 <= self.no_hint_share <= 1.0:
            raise ConfigError(f"no_hint_share must be a number in [0, 1], got {self.no_hint_share!r}")
        if self.location not in LOCATIONS:
            raise ConfigError(f"location must be one of {', '.join(LOCATIONS)}, got {self.location!r}")
        sizes = self.patch_sizes
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or not sizes:
            raise ConfigError(f"patch_sizes must be a non-empty list of patch sides in pixels, got {sizes!r}")
        if not all(_is_count(size) and 1 <= size <= MAX_PATCH_SIZE for size in sizes):
            raise ConfigError(f"patch_sizes must be whole numbers of pixels from 1 to {MAX_PATCH_SIZE}, got {sizes!r}")
        if len(set(sizes)) != len(sizes):
            raise ConfigError(f"patch_sizes lists a size twice: {sizes!r}; each listed size is drawn equally often")
        object.__setattr__(self, "patch_sizes", tuple(int(size) for size in sizes))  # a config gives a list
        if not _is_count(self.max_hints) or self.max_hints < 1:
            raise ConfigError(f"max_hints must be a whole number of at least 1, got {self.max_hints!r}")
        needed = smallest_cap(float(p))
        if self.max_hints < needed:
            raise ConfigError(
                f"max_hints={self.max_hints} cuts off {(1 - p) ** (self.max_hints + 1):.2g} of the hint count's law "
                f"at stop_probability={p:g}; raise it to at least {needed} (or raise stop_probability)"
            )


class Patches(NamedTuple):
    """Hint patches, each field (B, K) int64 or bool: rows ``[top, top + height)``, columns
    ``[left, left + width)``; ``active`` is False for an image's slots past its hint count.
    Where patches overlap, the higher slot wins."""

    top: Tensor
    left: Tensor
    height: Tensor
    width: Tensor
    active: Tensor


def _geometric(uniform: Tensor, stop_probability: float) -> Tensor:
    """Counts with ``P(N >= n) = (1 - p)^n`` from uniforms in (0, 1], by inverting the tail."""
    if stop_probability >= 1.0:
        return torch.zeros_like(uniform, dtype=torch.long)
    return torch.floor(uniform.log() / math.log1p(-stop_probability)).long()


def _places(free: Tensor, location: str, generator: torch.Generator | None) -> Tensor:
    """A top (or left) in ``[0, free)`` for each entry, ``free`` legal positions each."""
    span = free.float()
    if location == "normal":
        draw = torch.randn(free.shape, generator=generator, device=free.device)
        place = torch.floor(span / 2 + span / 4 * draw)
    else:
        place = torch.floor(span * torch.rand(free.shape, generator=generator, device=free.device))
    return torch.minimum(place.clamp(min=0).long(), free - 1)  # rand * n may round up to n


def draw_patches(
    batch: int,
    height: int,
    width: int,
    sampling: HintSampling,
    *,
    count: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Patches:
    """The patches :func:`sample_hints` reveals, K = ``sampling.max_hints`` slots per image (or
    exactly ``count`` hints each when given, as in Zhang's sweep).

    Drawn where ``generator`` lives (else on ``device``, default CPU) and moved to ``device``:
    give a generator on the batch's device and nothing waits for the device. Draw order: no-hint
    share, counts, sizes, rows, columns; the same generator state gives the same patches.
    """
    if height < 1 or width < 1 or batch < 0:
        raise ValueError(f"need a batch of images at least 1x1, got batch={batch}, height={height}, width={width}")
    if device is not None:
        target = torch.device(device)
    else:
        target = generator.device if generator is not None else torch.device("cpu")
    where = generator.device if generator is not None else target
    if count is None:
        slots = sampling.max_hints
        forced_none = torch.rand(batch, generator=generator, device=where) < sampling.no_hint_share
        tail = 1.0 - torch.rand(batch, generator=generator, device=where)  # (0, 1]
        counts = _geometric(tail, sampling.stop_probability).clamp_(max=slots).masked_fill_(forced_none, 0)
        active = torch.arange(slots, device=where) < counts[:, None]
    else:
        if not _is_count(count) or count < 0:
            raise ValueError(f"count must be a whole number of hints, 0 or more, got {count!r}")
        slots = int(count)
        active = torch.ones(batch, slots, dtype=torch.bool, device=where)
    choice = torch.randint(len(sampling.patch_sizes), (batch, slots), generator=generator, device=where)
    side = torch.zeros_like(choice)
    for index, size in enumerate(sampling.patch_sizes):  # a table lookup without copying a table to the device
        side.masked_fill_(choice == index, size)
    rows, cols = side.clamp(max=height), side.clamp(max=width)
    top = _places(height - rows + 1, sampling.location, generator)
    left = _places(width - cols + 1, sampling.location, generator)
    return Patches(*(field.to(target) for field in (top, left, rows, cols, active)))


def _footprint(patches: Patches, height: int, width: int, span: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Each patch's pixels as flat indices (B, K, span_y * span_x) into an H x W image, and which of
    them belong to the patch (the rest are clamped duplicates to be ignored)."""
    device = patches.top.device
    dy = torch.arange(span[0], device=device)
    dx = torch.arange(span[1], device=device)
    ys = (patches.top[..., None] + dy).clamp_(max=height - 1)
    xs = (patches.left[..., None] + dx).clamp_(max=width - 1)
    flat = ys[..., :, None] * width + xs[..., None, :]
    inside = (dy < patches.height[..., None])[..., :, None] & (dx < patches.width[..., None])[..., None, :]
    return flat.flatten(-2), inside.flatten(-2)


def _paint(
    patches: Patches, values: Tensor, height: int, width: int, footprint: tuple[Tensor, Tensor] | None
) -> tuple[Tensor, Tensor]:
    """(hint_ab, mask) with each active patch filled with its ``values`` (B, 2, K), normalised ab;
    ``footprint`` is :func:`_footprint`'s (None when there are no slots)."""
    batch, slots = patches.top.shape
    hint = values.new_zeros(batch, 2, height * width)
    mask = values.new_zeros(batch, 1, height * width)
    if footprint is not None and slots > 0:
        flat, inside = footprint
        slot = torch.arange(slots, device=flat.device)[:, None].expand(batch, slots, flat.shape[-1])
        slot = torch.where(inside & patches.active[..., None], slot, -1)
        winner = torch.full((batch, height * width), -1, dtype=torch.long, device=flat.device)
        winner.scatter_reduce_(1, flat.flatten(1), slot.flatten(1), reduce="amax")  # the last writer wins
        hinted = winner >= 0
        picked = values.gather(2, winner.clamp(min=0)[:, None].expand(batch, 2, -1))
        hint = picked.masked_fill(~hinted[:, None], 0.0)
        mask = hinted[:, None].to(values.dtype)
    return hint.view(batch, 2, height, width), mask.view(batch, 1, height, width)


def _working_dtype(ab: Tensor) -> torch.dtype:
    return torch.promote_types(ab.dtype, torch.float32)  # float64 stays, half and integers go to float32


def _reveal(ab: Tensor, patches: Patches, max_side: int) -> tuple[Tensor, Tensor]:
    """(hint_ab, mask) revealing the mean ab of the truth ``ab`` (B, 2, H, W, ab units) over each
    active patch, as normalised ab; no patch side exceeds ``max_side``."""
    batch, _, height, width = ab.shape
    slots = patches.top.shape[1]
    values = ab.to(_working_dtype(ab)).flatten(2)
    if slots == 0:
        return _paint(patches, values.new_zeros(batch, 2, 0), height, width, None)
    footprint = _footprint(patches, height, width, (min(max_side, height), min(max_side, width)))
    flat, inside = footprint
    picked = values.gather(2, flat.flatten(1)[:, None].expand(batch, 2, -1)).view(batch, 2, slots, -1)
    sums = picked.masked_fill(~inside[:, None], 0.0).sum(-1)  # exact sums over each patch's own pixels
    means = sums / (patches.height * patches.width)[:, None].to(values.dtype)
    return _paint(patches, normalize_ab(means), height, width, footprint)


def _check_ab(ab: Tensor) -> None:
    if ab.ndim != 4 or ab.shape[1] != 2:
        raise ValueError(f"expected ground-truth ab with shape (B, 2, H, W), got {tuple(ab.shape)}")


def sample_hints(
    ab: Tensor, sampling: HintSampling, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Simulated user hints for a training batch, drawn on ``ab``'s device without host reads.

    ``ab``: ground truth (B, 2, H, W) in ab units. Returns ``hint_ab`` (B, 2, H, W), the patch's
    mean ab as ``(ab + 128) / 255`` on hinted pixels and 0 elsewhere, and ``mask`` (B, 1, H, W),
    1.0 on hinted pixels and 0.0 elsewhere (float32, float64 for float64 ``ab``). ``generator``
    (on ``ab``'s device for a wait-free draw) makes it reproducible; see :func:`draw_patches`.
    """
    _check_ab(ab)
    batch, _, height, width = ab.shape
    patches = draw_patches(batch, height, width, sampling, generator=generator, device=ab.device)
    return _reveal(ab, patches, max(sampling.patch_sizes))


def sweep_sampling(patch: int = SWEEP_PATCH, location: Location = "normal") -> HintSampling:
    """The sampler of :func:`random_hints_from_truth` (fixed patch side, the count given):
    :func:`draw_patches` with it and the same generator draws the same patches, to show them."""
    return HintSampling(patch_sizes=(patch,), location=location, stop_probability=1.0, max_hints=1)


def random_hints_from_truth(
    ab: Tensor,
    count: int,
    patch: int = SWEEP_PATCH,
    generator: torch.Generator | None = None,
    location: Location = "normal",
) -> tuple[Tensor, Tensor]:
    """Exactly ``count`` hints per image, each the mean ab over a ``patch`` x ``patch`` square of
    the truth: the protocol of Zhang et al.'s ``test_sweep.py`` (run it for each of
    :data:`SWEEP_COUNTS`). Their sweep places patches by the training sampler's default,
    ``"normal"``, so that is the default here too, to compare with their curve."""
    _check_ab(ab)
    sampling = sweep_sampling(patch, location)
    batch, _, height, width = ab.shape
    patches = draw_patches(batch, height, width, sampling, count=count, generator=generator, device=ab.device)
    return _reveal(ab, patches, patch)


HintRow = tuple[float, float, float, float, int]


def place_hints(
    height: int,
    width: int,
    hints: Sequence[HintRow] | Tensor,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """(hint_ab (1, 2, H, W), mask (1, 1, H, W)) from a user's hints, for inference.

    Each hint is ``(y, x, a, b, size)``: the patch's centre in working-resolution pixels (pixel
    centres at whole numbers; rounded to the nearest pixel), its colour in ab units, and its side.
    An odd side is centred on the pixel; an even one reaches one pixel further up and left (side
    6 at row 10: rows 7..12). Patches are clipped to the image; later hints overwrite earlier ones.
    A centre outside the image or a side below 1 is a :class:`ConfigError`.
    """
    if height < 1 or width < 1:
        raise ValueError(f"need an image at least 1x1, got {height}x{width}")
    table = torch.as_tensor(hints, dtype=torch.float64).detach().cpu()
    if table.numel() == 0:
        table = table.reshape(0, 5)
    if table.ndim != 2 or table.shape[1] != 5:
        raise ConfigError(f"hints must be rows of (y, x, a, b, size), got shape {tuple(table.shape)}")
    if not bool(torch.isfinite(table).all()):
        raise ConfigError("hints must be finite numbers (y, x, a, b, size)")
    sizes = table[:, 4]
    if bool((sizes < 1).any() | (sizes != sizes.round()).any()):
        raise ConfigError(f"a hint's size must be a whole number of pixels, 1 or more, got {sizes.tolist()}")
    centre_y = torch.floor(table[:, 0] + 0.5).long()
    centre_x = torch.floor(table[:, 1] + 0.5).long()
    outside = (centre_y < 0) | (centre_y >= height) | (centre_x < 0) | (centre_x >= width)
    if bool(outside.any()):
        raise ConfigError(
            f"hints at (y, x) {table[outside, :2].tolist()} lie outside the {height}x{width} image "
            "(coordinates are working-resolution pixels)"
        )
    side = sizes.long()
    top, left = centre_y - side // 2, centre_x - side // 2
    bottom, right = (top + side).clamp(max=height), (left + side).clamp(max=width)
    top, left = top.clamp(min=0), left.clamp(min=0)
    patches = Patches(
        top[None], left[None], (bottom - top)[None], (right - left)[None], torch.ones(1, len(table), dtype=torch.bool)
    )
    values = normalize_ab(table[:, 2:4].T[None].float())  # (1, 2, K)
    footprint = None
    if len(table):
        footprint = _footprint(patches, height, width, (int(patches.height.max()), int(patches.width.max())))
    hint, mask = _paint(patches, values, height, width, footprint)
    target = torch.device(device) if device is not None else torch.device("cpu")
    return hint.to(target), mask.to(target)


def hint_distance(height: int, width: int, centres: Sequence[tuple[float, float]]) -> Tensor:
    """(H, W) float64: each pixel centre's Euclidean distance, in pixels, to the nearest of the
    hint ``centres`` ((y, x) pixel coordinates, 0 at the top-left pixel's centre)."""
    if not len(centres):
        raise ValueError("need at least one hint centre to measure distances from")
    ys = torch.arange(height, dtype=torch.float64)[:, None, None]
    xs = torch.arange(width, dtype=torch.float64)[None, :, None]
    table = torch.as_tensor(centres, dtype=torch.float64).reshape(-1, 2)
    return ((ys - table[:, 0]) ** 2 + (xs - table[:, 1]) ** 2).sqrt().amin(dim=-1)


def change_by_distance(change: Tensor, distance: Tensor, edges: Sequence[float]) -> list[tuple[float, float, int]]:
    """A hint's reach: per distance bin ``[edges[i], edges[i + 1])`` (the last ``[edges[-1], inf)``),
    (mean change, share of pixels whose change exceeds :data:`MOVED_AB`, pixel count), NaN for an
    empty bin. ``change`` (H, W): how far each pixel's ab moved (ab units) when the hints were added;
    ``distance``: :func:`hint_distance`'s."""
    if change.shape != distance.shape:
        raise ValueError(f"change {tuple(change.shape)} and distance {tuple(distance.shape)} differ in shape")
    change, distance = change.double().flatten(), distance.double().flatten()
    bounds = list(edges) + [math.inf]
    rows = []
    for low, high in zip(bounds[:-1], bounds[1:]):
        inside = (distance >= low) & (distance < high)
        count = int(inside.sum())
        moved = change[inside]
        rows.append((float(moved.mean()) if count else math.nan, float((moved > MOVED_AB).double().mean()) if count else math.nan, count))
    return rows


def far_moved_share(change: Tensor, distance: Tensor, radius: float, threshold: float = MOVED_AB) -> float:
    """The share of pixels at least ``radius`` from every hint whose ab moved more than
    ``threshold`` ab units (issue 31's locality: a hint should leave the far photo alone); NaN
    when no pixel is that far."""
    far = distance >= radius
    return float((change[far] > threshold).double().mean()) if bool(far.any()) else math.nan
