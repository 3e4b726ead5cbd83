"""Temporal-consistency metrics of one colorized video, streamed one frame at a time.

* Warping error (Lai et al. 2018, "Learning Blind Video Temporal Consistency";
  fast_blind_video_consistency, ``evaluate_WarpError.py``): frame t+1 warped back to t with the
  flow of the input video, the squared RGB difference in [0, 1] over the non-occluded pixels.
* ab warping error: the same warp and mask, the mean Euclidean distance of the CIE ab channels
  (ab units). A colorizer keeps L*, so its flicker lives in ab; RGB mixes in the (shared) L*.
* CDC, color distribution consistency (Liu et al. 2021, TCVC; ``codes/eval_results.py``,
  ``calculate_folders_multiple`` / ``compute_JS_bgr``): Jensen-Shannon divergence of per-channel
  256-bin histograms between frames t and t+d, d in {1, 2, 4}, weights 1/3 each. Needs no flow.

Every number here is a per-clip mean, as both papers report per clip before averaging over the
clips of a benchmark; averaging over clips is the caller's. Numpy and OpenCV on the CPU,
float32, full resolution.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

try:
    import cv2
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("video needs OpenCV: pip install -e '.[video]' (opencv-python-headless)") from None

from lit_colorize.video.flow import PairGeometry, check_rgb_u8, lab_of, warp_with_maps

CDC_DILATIONS: tuple[int, ...] = (1, 2, 4)
CDC_WEIGHTS: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)


def to_float_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 in [0, 1], as Lai et al.'s ``read_img`` (``/ 255``)."""
    check_rgb_u8(rgb)
    return rgb.astype(np.float32) / np.float32(255.0)


def ab_channels(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)`` -> CIE a*, b* float32 ``(H, W, 2)`` in ab units (the project's Lab)."""
    return np.ascontiguousarray(lab_of(rgb)[1:].transpose(1, 2, 0))


def _check_pair(rgb_t: np.ndarray, rgb_t1: np.ndarray, geometry: PairGeometry) -> None:
    if rgb_t.shape != rgb_t1.shape or rgb_t.shape[:2] != geometry.flow.shape[:2]:
        raise ValueError(
            f"frames {rgb_t.shape}, {rgb_t1.shape} and flow {geometry.flow.shape} must share (H, W)"
        )


def _masked_warp_error(float_t: np.ndarray, float_t1: np.ndarray, geometry: PairGeometry) -> float:
    """Lai et al.'s per-pair error on float RGB: sum over valid pixels and channels of the
    squared difference, divided by (valid pixels × channels); nan when no pixel is valid."""
    if geometry.valid_count == 0:
        return math.nan
    diff = warp_with_maps(float_t1, *geometry.maps)
    diff -= float_t
    squared = np.einsum("hwc,hwc->hw", diff, diff)
    return float(squared[geometry.valid].sum(dtype=np.float64)) / (geometry.valid_count * float_t.shape[2])


def _masked_ab_error(ab_t: np.ndarray, ab_t1: np.ndarray, geometry: PairGeometry) -> float:
    """Mean over valid pixels of |ab_t - warp(ab_t1)| (ab units); nan when no pixel is valid."""
    if geometry.valid_count == 0:
        return math.nan
    diff = warp_with_maps(ab_t1, *geometry.maps)
    diff -= ab_t
    distance = np.sqrt(np.einsum("hwc,hwc->hw", diff, diff))
    return float(distance[geometry.valid].sum(dtype=np.float64)) / geometry.valid_count


def warping_error(rgb_t: np.ndarray, rgb_t1: np.ndarray, geometry: PairGeometry) -> float:
    """Lai et al.'s warping error of one pair: uint8 RGB frames t and t+1, ``geometry`` from t to t+1.

    ``E = Σ_valid Σ_c (warp(I_t+1)(x) - I_t(x))² / (3 · #valid)``, RGB in [0, 1]: the mean over
    channels too, as ``evaluate_WarpError.py`` divides by ``np.sum(noc_mask)`` with the mask read
    as a 3-channel image. Deviation: with no valid pixel Lai et al. add 0 to the clip's sum and
    still count the pair; this returns nan and :class:`VideoConsistency` leaves the pair out,
    since a pair without correspondences says nothing about consistency.
    """
    check_rgb_u8(rgb_t, "rgb_t")
    check_rgb_u8(rgb_t1, "rgb_t1")
    _check_pair(rgb_t, rgb_t1, geometry)
    return _masked_warp_error(to_float_rgb(rgb_t), to_float_rgb(rgb_t1), geometry)


def ab_warping_error(rgb_t: np.ndarray, rgb_t1: np.ndarray, geometry: PairGeometry) -> float:
    """Mean Euclidean ab distance (ab units) between frame t and frame t+1 warped back to t, over
    the valid pixels; nan when none is valid. The ab channels of t+1 are warped, not its RGB,
    so the bilinear mix happens in the space that is measured."""
    check_rgb_u8(rgb_t, "rgb_t")
    check_rgb_u8(rgb_t1, "rgb_t1")
    _check_pair(rgb_t, rgb_t1, geometry)
    return _masked_ab_error(ab_channels(rgb_t), ab_channels(rgb_t1), geometry)


def histograms(rgb: np.ndarray) -> np.ndarray:
    """Per-channel 256-bin histograms of a uint8 RGB frame, float64 ``(3, 256)``, each summing
    to 1 (TCVC's ``cv2.calcHist(..., [256], [0, 256]) / (H * W)``, channels in RGB order here;
    CDC averages over channels, so the order does not matter)."""
    check_rgb_u8(rgb)
    counts = np.stack([cv2.calcHist([rgb], [c], None, [256], [0, 256]).reshape(-1) for c in range(3)])
    return counts.astype(np.float64) / (rgb.shape[0] * rgb.shape[1])


def _js_last_axis(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence along the last axis, natural log, 0·log 0 = 0."""
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_pm = np.where(p > 0, p * np.log(p / m), 0.0).sum(axis=-1)
        kl_qm = np.where(q > 0, q * np.log(q / m), 0.0).sum(axis=-1)
    return 0.5 * kl_pm + 0.5 * kl_qm


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence of two histograms, in nats: ``½ KL(p‖m) + ½ KL(q‖m)``,
    ``m = (p + q) / 2``.

    As TCVC's ``JS_divergence``: ``scipy.stats.entropy`` with its default base e, which also
    rescales each argument to sum 1 (done here too, so raw counts work). Range [0, ln 2].
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.ndim != 1 or p.shape != q.shape:
        raise ValueError(f"p and q must be 1-D of the same length, got {p.shape} and {q.shape}")
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("p and q must be non-negative with a positive sum")
    return float(_js_last_axis(p, q))


class VideoConsistency:
    """Streaming temporal-consistency metrics of one colorized video (one row of a benchmark).

    Feed the frames in order with :meth:`update`; memory stays constant: the previous frame (as
    float RGB and ab, the operands of the next pair) and the last four frames' histograms, the
    ones CDC's dilations 1, 2 and 4 reach back to. :meth:`summary` gives the per-clip means.
    """

    def __init__(self) -> None:
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # float RGB, ab
        self._histograms: deque[np.ndarray] = deque(maxlen=max(CDC_DILATIONS))
        self._warp_sum = 0.0
        self._ab_sum = 0.0
        self._pairs = 0
        self.skipped_pairs = 0  # pairs without a single valid pixel, left out of the means
        self.frames = 0
        self._js_sums = np.zeros((len(CDC_DILATIONS), 3), dtype=np.float64)
        self._js_counts = np.zeros(len(CDC_DILATIONS), dtype=np.int64)

    def update(self, rgb: np.ndarray, geometry_from_previous: PairGeometry | None) -> None:
        """Add the next uint8 RGB frame ``(H, W, 3)``.

        ``geometry_from_previous`` maps the previous frame onto this one (computed once from the
        input video, shared by every row). None for the first frame, or to start over after a
        cut the caller declares: no pair spans a None, for CDC either, since frames across a
        cut are not temporal neighbours.
        """
        check_rgb_u8(rgb)
        if geometry_from_previous is None:
            self._previous = None
            self._histograms.clear()
        elif self._previous is None:
            raise ValueError("a geometry was given but there is no previous frame (pass None for the first frame)")
        elif geometry_from_previous.flow.shape[:2] != rgb.shape[:2] or self._previous[0].shape != rgb.shape:
            raise ValueError(
                f"frame {rgb.shape}, previous frame {self._previous[0].shape} and flow "
                f"{geometry_from_previous.flow.shape} must share (H, W)"
            )

        current = (to_float_rgb(rgb), ab_channels(rgb))
        if geometry_from_previous is not None and self._previous is not None:
            warp_error = _masked_warp_error(self._previous[0], current[0], geometry_from_previous)
            if math.isnan(warp_error):
                self.skipped_pairs += 1
            else:
                self._warp_sum += warp_error
                self._ab_sum += _masked_ab_error(self._previous[1], current[1], geometry_from_previous)
                self._pairs += 1

        hist = histograms(rgb)
        for k, dilation in enumerate(CDC_DILATIONS):
            if len(self._histograms) >= dilation:
                self._js_sums[k] += _js_last_axis(self._histograms[-dilation], hist)
                self._js_counts[k] += 1
        self._histograms.append(hist)
        self._previous = current
        self.frames += 1

    @property
    def histograms_kept(self) -> int:
        """How many frames' histograms are held (at most 4, whatever the video's length)."""
        return len(self._histograms)

    def cdc(self) -> float:
        """TCVC's CDC of this clip: ``mean_c Σ_d w_d · mean_t JS(h_c(t), h_c(t+d))``.

        nan while some dilation has no pair (a clip of under 5 frames), as TCVC's ``np.mean`` of
        an empty list gives.
        """
        if (self._js_counts == 0).any():
            return math.nan
        per_dilation = self._js_sums / self._js_counts[:, None]
        return float((np.asarray(CDC_WEIGHTS)[:, None] * per_dilation).sum(axis=0).mean())

    def summary(self) -> dict[str, float]:
        """``warp_error_e3`` (the mean warping error × 10³, the unit papers print it in),
        ``ab_warp_error`` (ab units), ``cdc`` and ``pairs`` (the pairs in the two warping means);
        nan for a metric with nothing to average."""
        pairs = self._pairs
        return {
            "warp_error_e3": self._warp_sum / pairs * 1e3 if pairs else math.nan,
            "ab_warp_error": self._ab_sum / pairs if pairs else math.nan,
            "cdc": self.cdc(),
            "pairs": float(pairs),
        }
