"""Optical flow helpers and temporal-consistency metrics (lit_colorize.video.flow, .consistency)
against independent oracles: known shifts, hand-built flows, naive numpy re-implementations and
scipy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

cv2 = pytest.importorskip("cv2")

from lit_colorize.color import rgb_to_lab  # noqa: E402
from lit_colorize.video.consistency import (  # noqa: E402
    VideoConsistency,
    ab_channels,
    ab_warping_error,
    histograms,
    js_divergence,
    warping_error,
)
from lit_colorize.video.flow import (  # noqa: E402
    FlowEstimator,
    PairGeometry,
    occlusion_mask,
    out_of_frame,
    pair_geometry,
    to_gray_u8,
    warp,
)

SHIFT = (3, 2)  # the crop window moves right by 3 and down by 2 pixels a frame
SIZE = (96, 128)


def smooth_texture(height: int, width: int, seed: int = 0, sigma: float = 2.0) -> np.ndarray:
    """Gaussian-blurred RGB noise stretched to 0..255: texture DIS can track, no shared data."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height, width, 3), dtype=np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), sigma)
    lo, hi = blurred.min(), blurred.max()
    return np.rint((blurred - lo) / (hi - lo) * 255).astype(np.uint8)


def photo(shared_data: Path) -> np.ndarray:
    path = sorted((shared_data / "photos" / "bsds500" / "test").glob("*.jpg"))[0]
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def translated(image: np.ndarray, frames: int = 6) -> list[np.ndarray]:
    """Crops whose window moves by SHIFT each frame: frame k+1 at x equals frame k at x + SHIFT,
    so the true flow from k to k+1 is -SHIFT everywhere."""
    (height, width), (dx, dy), (y0, x0) = SIZE, SHIFT, (100, 150)
    windows = [(y0 + dy * k, x0 + dx * k) for k in range(frames)]
    return [np.ascontiguousarray(image[y : y + height, x : x + width]) for y, x in windows]


def geometries(frames: list[np.ndarray]) -> list[PairGeometry | None]:
    estimator = FlowEstimator("medium")
    gray = [to_gray_u8(frame) for frame in frames]
    return [None] + [pair_geometry(a, b, estimator) for a, b in zip(gray, gray[1:])]


def run(frames: list[np.ndarray], geometry: list[PairGeometry | None]) -> dict[str, float]:
    metrics = VideoConsistency()
    for frame, pair in zip(frames, geometry):
        metrics.update(frame, pair)
    return metrics.summary()


def still(height: int, width: int, valid: np.ndarray | None = None) -> PairGeometry:
    return PairGeometry(
        flow=np.zeros((height, width, 2), np.float32),
        valid=np.ones((height, width), bool) if valid is None else valid,
    )


def naive_bilinear(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """image(x + flow(x)) by the textbook formula, the four neighbours clamped to the frame."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    x = np.clip(xs + flow[..., 0], 0, width - 1)
    y = np.clip(ys + flow[..., 1], 0, height - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    ax, ay = x - x0, y - y0
    if image.ndim == 3:
        ax, ay = ax[..., None], ay[..., None]
    img = image.astype(np.float64)
    top = (1 - ax) * img[y0, x0] + ax * img[y0, x1]
    bottom = (1 - ax) * img[y1, x0] + ax * img[y1, x1]
    return (1 - ay) * top + ay * bottom


# --- flow.py -----------------------------------------------------------------------------


def test_warp_matches_naive_bilinear_at_random_subpixel_flow() -> None:
    rng = np.random.default_rng(3)
    image = rng.random((40, 50, 3), dtype=np.float32)
    flow = rng.uniform(-3.5, 3.5, (40, 50, 2)).astype(np.float32)  # reaches out of the frame too
    # OpenCV 4 quantises remap's sub-pixel position to 1/32 px; OpenCV 5 samples exactly.
    tol = 1e-5 if int(cv2.__version__.split(".")[0]) >= 5 else 1 / 32
    np.testing.assert_allclose(warp(image, flow), naive_bilinear(image, flow), atol=tol)
    np.testing.assert_allclose(warp(image[..., 0], flow), naive_bilinear(image[..., 0], flow), atol=tol)
    single = warp(image[..., :1], flow)
    assert single.shape == (40, 50, 1)
    as_u8 = warp(np.rint(image * 255).astype(np.uint8), flow)
    assert as_u8.dtype == np.float32  # no rounding back to uint8
    np.testing.assert_allclose(as_u8, naive_bilinear(np.rint(image * 255), flow), atol=255 * tol)


def test_gray_is_cie_lightness_scaled_to_255() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    lightness = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1))[0].numpy()
    expected = np.clip(np.rint(lightness * 2.55), 0, 255)
    gray = to_gray_u8(rgb)
    assert gray.dtype == np.uint8 and gray.shape == (32, 48)
    assert np.abs(gray - expected).max() <= 1  # a float32 rounding tie at most
    assert (gray == expected).mean() > 0.99


def test_ab_agrees_with_the_projects_lab() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    rgb[:4] //= 40  # dark pixels: the linear branch of Lab's f
    expected = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1))[1:].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ab_channels(rgb), expected, atol=0.01)


def test_estimator_rejects_color_float_and_mismatched_frames() -> None:
    estimator = FlowEstimator("ultrafast")
    gray = np.zeros((32, 48), np.uint8)
    with pytest.raises(ValueError, match="uint8 gray"):
        estimator(np.zeros((32, 48, 3), np.uint8), gray)
    with pytest.raises(ValueError, match="uint8 gray"):
        estimator(gray.astype(np.float32), gray)
    with pytest.raises(ValueError, match="differ in size"):
        estimator(gray, np.zeros((32, 40), np.uint8))
    with pytest.raises(ValueError, match="preset"):
        FlowEstimator("slow")  # type: ignore[arg-type]


def test_occlusion_of_a_square_moving_right_worked_out_by_hand() -> None:
    height, width, k = 32, 48, 3
    rows, cols = slice(10, 18), slice(20, 28)  # an 8x8 square in frame a; in frame b at columns 23..30
    flow_ab = np.zeros((height, width, 2), np.float32)
    flow_ab[rows, cols, 0] = k  # a's square pixels move right by k, the background rests
    flow_ba = np.zeros((height, width, 2), np.float32)
    flow_ba[rows, 23:31, 0] = -k  # b's square pixels come from k to the left

    expected = np.zeros((height, width), bool)
    expected[rows, 28:31] = True  # background of a that the square covers in b: no match in b
    # motion boundaries, where the forward differences of Lai et al. see the step in flow_ab
    expected[rows, 19] = True  # left of the square (0 - k)
    expected[rows, 27] = True  # the square's last column (k - 0)
    expected[9, cols] = True  # above the square
    expected[17, cols] = True  # the square's last row
    np.testing.assert_array_equal(occlusion_mask(flow_ab, flow_ba), expected)

    # In b's coordinates the uncovered background (columns 20..22, seen in b, hidden in a) is flagged.
    uncovered = occlusion_mask(flow_ba, flow_ab)
    assert uncovered[rows, 20:23].all()
    assert not uncovered[10:17, 24:30].any()  # the square's interior (not its last row and column: boundaries)
    # The static background far from the square is never flagged, in either direction.
    for mask in (occlusion_mask(flow_ab, flow_ba), uncovered):
        assert not mask[:8].any() and not mask[20:].any() and not mask[:, :17].any() and not mask[:, 33:].any()


def test_global_shift_flags_only_pixels_whose_match_leaves_the_frame() -> None:
    height, width = 20, 30
    flow_ab = np.empty((height, width, 2), np.float32)
    flow_ab[...] = (2.0, -1.0)  # a's (x, y) is b's (x + 2, y - 1)
    flow_ba = -flow_ab
    expected = np.zeros((height, width), bool)
    expected[:, -2:] = True  # x + 2 > width - 1
    expected[0, :] = True  # y - 1 < 0
    np.testing.assert_array_equal(out_of_frame(flow_ab), expected)
    np.testing.assert_array_equal(occlusion_mask(flow_ab, flow_ba), expected)


# --- consistency.py ----------------------------------------------------------------------


def test_warping_error_of_constant_frames_worked_out_by_hand() -> None:
    height, width = 8, 10
    frame_t = np.empty((height, width, 3), np.uint8)
    frame_t[...] = (10, 20, 30)
    frame_t1 = frame_t.copy()
    frame_t1[:, :5] = (40, 20, 0)  # left half differs by (30, 0, -30) levels
    per_pixel = ((30 / 255) ** 2 + 0 + (30 / 255) ** 2) / 3  # Lai et al.: mean over the channels too
    assert warping_error(frame_t, frame_t1, still(height, width)) == pytest.approx(per_pixel / 2, rel=1e-6)
    left = np.zeros((height, width), bool)
    left[:, :5] = True  # the mean runs over the valid pixels only
    assert warping_error(frame_t, frame_t1, still(height, width, left)) == pytest.approx(per_pixel, rel=1e-6)
    assert warping_error(frame_t, frame_t1, still(height, width, ~left)) == 0.0
    ab_shift = np.linalg.norm(ab_channels(frame_t1)[0, 0] - ab_channels(frame_t)[0, 0])
    assert ab_warping_error(frame_t, frame_t1, still(height, width, left)) == pytest.approx(ab_shift, rel=1e-5)

    nothing_valid = still(height, width, np.zeros((height, width), bool))
    assert math.isnan(warping_error(frame_t, frame_t1, nothing_valid))
    metrics = VideoConsistency()
    metrics.update(frame_t, None)
    metrics.update(frame_t1, nothing_valid)  # skipped, not counted as a zero
    metrics.update(frame_t, still(height, width, left))
    summary = metrics.summary()
    assert summary["pairs"] == 1 and metrics.skipped_pairs == 1
    assert summary["warp_error_e3"] == pytest.approx(per_pixel * 1e3, rel=1e-6)


def test_static_video_scores_zero() -> None:
    frame = smooth_texture(*SIZE)
    frames = [frame] * 6
    summary = run(frames, geometries(frames))
    assert summary["pairs"] == 5
    assert summary["warp_error_e3"] == pytest.approx(0.0, abs=1e-6)
    assert summary["ab_warp_error"] == pytest.approx(0.0, abs=1e-4)
    assert summary["cdc"] == 0.0


def test_translated_video_has_near_zero_warping_errors_and_the_true_flow(shared_data: Path) -> None:
    frames = translated(photo(shared_data))
    geometry = geometries(frames)
    for pair in geometry[1:]:
        interior = pair.flow[8:-8, 8:-8]
        error = np.hypot(interior[..., 0] + SHIFT[0], interior[..., 1] + SHIFT[1])
        assert np.median(error) < 0.25
        # frame t's first 3 columns and 2 rows match outside frame t+1: invalid; most of the rest is kept
        assert not pair.valid[:, : SHIFT[0]].any() and not pair.valid[: SHIFT[1]].any()
        assert pair.valid.mean() > 0.85
    summary = run(frames, geometry)
    assert summary["pairs"] == 5
    assert summary["warp_error_e3"] < 1.0
    assert summary["ab_warp_error"] < 1.0


def test_flickering_ab_gives_a_large_ab_warping_error(shared_data: Path) -> None:
    lab2rgb = pytest.importorskip("skimage.color").lab2rgb
    rgb2lab = pytest.importorskip("skimage.color").rgb2lab
    frames = translated(photo(shared_data))
    geometry = geometries(frames)  # from the input video, shared by both rows

    def rows(flicker: float) -> list[np.ndarray]:
        out = []
        for k, frame in enumerate(frames):
            lab = rgb2lab(frame)
            lab[..., 1] += flicker * (k % 2)  # every other frame gets a shifted a*
            out.append(np.rint(np.clip(lab2rgb(lab), 0, 1) * 255).astype(np.uint8))
        return out

    steady = run(rows(0.0), geometry)
    flickering = run(rows(30.0), geometry)
    assert steady["ab_warp_error"] < 1.0
    assert flickering["ab_warp_error"] > 10.0
    assert flickering["warp_error_e3"] > 10 * steady["warp_error_e3"]
    assert flickering["cdc"] > 10 * steady["cdc"]


def test_js_divergence_matches_scipy_in_nats() -> None:
    distance = pytest.importorskip("scipy.spatial.distance")
    rng = np.random.default_rng(5)
    for _ in range(5):
        p, q = rng.random(256), rng.random(256)
        p[rng.random(256) < 0.3] = 0  # empty bins: 0 log 0 = 0
        q[:10] = 0
        assert js_divergence(p, q) == pytest.approx(distance.jensenshannon(p, q) ** 2, rel=1e-9, abs=1e-12)
    assert js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(math.log(2))
    assert js_divergence(p, p) == 0.0


def naive_cdc(frames: list[np.ndarray]) -> float:
    """TCVC's CDC written out: per channel, the mean over pairs (t, t+d) of the JS divergence of
    256-bin histograms normalised by H*W, weighted 1/3 for d = 1, 2, 4, then the channel mean."""

    def js(p: np.ndarray, q: np.ndarray) -> float:
        m = (p + q) / 2
        kl = lambda a: sum(a[i] * math.log(a[i] / m[i]) for i in range(len(a)) if a[i] > 0)  # noqa: E731
        return 0.5 * kl(p) + 0.5 * kl(q)

    per_channel = []
    for c in range(3):
        hist = [np.bincount(f[..., c].ravel(), minlength=256) / (f.shape[0] * f.shape[1]) for f in frames]
        total = 0.0
        for d in (1, 2, 4):
            total += np.mean([js(hist[i], hist[i + d]) for i in range(len(hist) - d)]) / 3
        per_channel.append(total)
    return float(np.mean(per_channel))


def test_cdc_matches_a_naive_tcvc_reimplementation() -> None:
    rng = np.random.default_rng(7)
    frames = []
    for k in range(6):  # drifting, differently spread colors: every histogram pair differs
        center = np.array([80 + 15 * k, 120, 200 - 20 * k])
        frames.append(np.clip(rng.normal(center, 20 + 3 * k, (24, 32, 3)), 0, 255).astype(np.uint8))
    geometry = [None] + [still(24, 32)] * 5
    metrics = VideoConsistency()
    for frame, pair in zip(frames, geometry):
        metrics.update(frame, pair)
        assert metrics.histograms_kept <= 4  # constant memory: the last four histograms only
    assert metrics.summary()["cdc"] == pytest.approx(naive_cdc(frames), rel=1e-9)
    np.testing.assert_allclose(histograms(frames[0]).sum(axis=1), 1.0)
    # fewer than five frames leave dilation 4 without a pair: nan, as TCVC's mean of nothing
    short = VideoConsistency()
    for frame, pair in zip(frames[:4], geometry):
        short.update(frame, pair)
    assert math.isnan(short.summary()["cdc"])


def test_none_geometry_starts_over_and_a_geometry_needs_a_previous_frame() -> None:
    frame = smooth_texture(24, 32)
    other = smooth_texture(24, 32, seed=1)
    metrics = VideoConsistency()
    with pytest.raises(ValueError, match="no previous frame"):
        metrics.update(frame, still(24, 32))
    metrics.update(frame, None)
    metrics.update(other, None)  # a declared cut: no pair across it
    assert metrics.summary()["pairs"] == 0 and math.isnan(metrics.summary()["warp_error_e3"])
    with pytest.raises(ValueError, match="share"):
        metrics.update(frame, still(20, 32))
