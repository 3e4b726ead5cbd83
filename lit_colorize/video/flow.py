"""Optical flow on the gray frames (OpenCV's DIS), backward warping, and Lai et al.'s
occlusion mask: the geometry that the temporal-consistency metrics share.

Conventions (the whole of :mod:`lit_colorize.video`):

* A flow field is float32 ``(H, W, 2)`` holding ``(dx, dy)`` such that
  ``frame_a(x, y) ≈ frame_b(x + dx, y + dy)``: the flow "from a to b", in frame a's
  coordinates, as ``cv2.DISOpticalFlow.calc(a, b)`` returns it.
* :func:`warp` is backward warping, ``output(x) = image(x + flow(x))``: warping frame b with the
  flow from a to b brings b into frame a's coordinates.
* Masks (:func:`occlusion_mask`, :attr:`PairGeometry.valid`) are bool ``(H, W)`` in frame a's
  coordinates, so they apply directly to ``warp(b, flow_ab) - a``.
* Flow is estimated on CIE L* (:func:`to_gray_u8`), the channel the colorizer keeps, so every
  colorized row of a benchmark shares the geometry of its input video.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import torch

try:
    import cv2
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("video needs OpenCV: pip install -e '.[video]' (opencv-python-headless)") from None

from lit_colorize.color import rgb_to_lab

Preset = Literal["ultrafast", "fast", "medium"]

_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

def check_rgb_u8(rgb: np.ndarray, name: str = "rgb") -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(
            f"{name} must be a uint8 numpy array of shape (H, W, 3), got "
            f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}"
        )


def lab_of(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)`` -> CIE Lab float32 ``(3, H, W)``, by the project's one conversion
    (:func:`lit_colorize.color.rgb_to_lab`), so the L* here is the L* the colorizer sees."""
    check_rgb_u8(rgb)
    return rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)).numpy()


def to_gray_u8(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)`` -> uint8 gray ``(H, W)``: CIE L* × 2.55, rounded.

    L* rather than luma (``COLOR_RGB2GRAY``) because the colorizer keeps L*: flow estimated on it
    is the same for the input video and for every colorization of it.
    """
    return np.clip(np.rint(lab_of(rgb)[0] * 2.55), 0, 255).astype(np.uint8)



@contextmanager
def single_opencv_thread() -> Iterator[None]:
    """OpenCV on one thread inside the block, its thread count put back after. With OpenCV's
    worker threads, keyframe hints carried along the flow of the same video came out one of two
    ways from run to run; on one thread a video's colors are reproducible."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)

def _check_gray(gray: np.ndarray, name: str) -> None:
    if not isinstance(gray, np.ndarray) or gray.dtype != np.uint8 or gray.ndim != 2:
        raise ValueError(
            f"{name} must be a uint8 gray frame of shape (H, W), got "
            f"{getattr(gray, 'dtype', type(gray).__name__)} {getattr(gray, 'shape', '')}"
        )


def check_flow(flow: np.ndarray, name: str = "flow") -> None:
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[2] != 2 or flow.dtype != np.float32:
        raise ValueError(
            f"{name} must be float32 of shape (H, W, 2), got "
            f"{getattr(flow, 'dtype', type(flow).__name__)} {getattr(flow, 'shape', '')}"
        )


#: The shortest side DIS takes at all: below it OpenCV raises "The input image must have either
#: width or height >= 12" (measured by tests/test_video.py for every preset).
MIN_FLOW_SIDE = 12


class FlowEstimator:
    """Dense flow between two gray frames with OpenCV's DIS (Kroeger et al. 2016): fast enough on
    the CPU for full-resolution video ("medium" ≈ a few frames a second at 1080p).

    Small frames: DIS builds a pyramid whose coarsest level is set by the frame's sides; where
    that level lies above the preset's finest one, OpenCV re-chooses its scales from the width
    alone, and for short, wide frames (12x40, 16x100, 31x300 px: opencv-python 5.1) it then
    crashes the process (a segmentation fault, no exception). Such frames are enlarged for the
    estimate, to the smallest size where the coarsest level reaches the finest (for "fast":
    shorter side 32, longer 91), and the flow is scaled back. Frames with a side below
    :data:`MIN_FLOW_SIDE` are refused with a ValueError (callers go without flow)."""

    def __init__(self, preset: Preset = "medium") -> None:
        if preset not in _PRESETS:
            raise ValueError(f"preset must be one of {sorted(_PRESETS)}, got {preset!r}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(_PRESETS[preset])

    def _pyramid_fits(self, height: int, width: int) -> bool:
        """DIS's own rule (dis_flow.cpp): its coarsest level reaches the preset's finest one."""
        patch = self._dis.getPatchSize()
        coarsest = min(int(math.log2(max(height, width) / (4.0 * patch)) + 0.5), int(math.log2(min(height, width) / patch)))
        return coarsest >= self._dis.getFinestScale()

    def estimate_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) at which the flow of an (height, width) frame is estimated: the frame's
        own, or the smallest enlargement of it (same aspect ratio) that DIS handles safely."""
        if min(height, width) < MIN_FLOW_SIDE:
            raise ValueError(
                f"frames of {width}x{height} are too small for optical flow (DIS needs {MIN_FLOW_SIDE} px on each side)"
            )
        scale = 1.0
        while not self._pyramid_fits(round(height * scale), round(width * scale)):
            scale *= 1.05
        return round(height * scale), round(width * scale)

    def __call__(self, gray_a: np.ndarray, gray_b: np.ndarray) -> np.ndarray:
        """The flow from a to b, float32 ``(H, W, 2)``: ``gray_a(x) ≈ gray_b(x + flow(x))``."""
        _check_gray(gray_a, "gray_a")
        _check_gray(gray_b, "gray_b")
        if gray_a.shape != gray_b.shape:
            raise ValueError(f"frames differ in size: {gray_a.shape} and {gray_b.shape}")
        height, width = gray_a.shape
        size = self.estimate_size(height, width)
        if size == (height, width):
            flow = self._dis.calc(np.ascontiguousarray(gray_a), np.ascontiguousarray(gray_b), None)
            return np.asarray(flow, dtype=np.float32)
        big_a, big_b = (cv2.resize(gray, size[::-1], interpolation=cv2.INTER_LINEAR) for gray in (gray_a, gray_b))
        flow = cv2.resize(self._dis.calc(big_a, big_b, None), (width, height), interpolation=cv2.INTER_AREA)
        flow = np.asarray(flow, dtype=np.float32)
        flow[..., 0] *= np.float32(width / size[1])
        flow[..., 1] *= np.float32(height / size[0])
        return flow


def remap_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The absolute sampling positions ``x + dx``, ``y + dy`` (float32 maps for ``cv2.remap``)."""
    check_flow(flow)
    height, width = flow.shape[:2]
    map_x = flow[..., 0] + np.arange(width, dtype=np.float32)[None, :]
    map_y = flow[..., 1] + np.arange(height, dtype=np.float32)[:, None]
    return map_x, map_y


def warp_with_maps(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """:func:`warp` with the maps precomputed (one geometry serves every row of a benchmark)."""
    if image.ndim not in (2, 3) or image.shape[:2] != map_x.shape:
        raise ValueError(f"image {image.shape} does not match the flow's size {map_x.shape}")
    if image.dtype not in (np.float32, np.uint8):
        raise ValueError(f"image must be float32 or uint8, got {image.dtype}")
    source = image.astype(np.float32, copy=False)
    out = cv2.remap(source, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if image.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing channel axis of length 1
        out = out[..., None]
    return out


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warping, ``output(x) = image(x + flow(x))``, bilinear; float32 out.

    ``image`` is ``(H, W)`` or ``(H, W, C)``, float32 or uint8. Samples outside the frame take
    the nearest edge value (replicate, as the Resample2d layer Lai et al. warp with clamps its
    indices); :func:`out_of_frame` marks them. OpenCV 5's ``cv2.remap`` samples float32 at the
    exact position; OpenCV 4 quantises it to 1/32 pixel (an error under 1/64 of the local step).
    """
    return warp_with_maps(image, *remap_maps(flow))


def _outside(map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    height, width = map_x.shape
    return (map_x < 0) | (map_x > width - 1) | (map_y < 0) | (map_y > height - 1)


def out_of_frame(flow: np.ndarray) -> np.ndarray:
    """bool ``(H, W)``: True where ``x + flow(x)`` falls outside the frame ``[0, W-1] × [0, H-1]``."""
    return _outside(*remap_maps(flow))


def flow_magnitude_sq(flow: np.ndarray) -> np.ndarray:
    """``dx² + dy²`` per pixel (Lai et al.'s ``compute_flow_magnitude``)."""
    return _sum_sq(flow[..., 0], flow[..., 1])


def _sum_sq(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``u² + v²``, elementwise, without numpy's slow reduction over a length-2 axis."""
    out = np.multiply(u, u)
    out += np.multiply(v, v)
    return out


def flow_gradient_sq(flow: np.ndarray) -> np.ndarray:
    """Sum of the squared x and y differences of both flow components (Lai et al.'s
    ``compute_flow_gradients``: forward differences, zero in the last column and row)."""
    grad = np.zeros(flow.shape[:2], dtype=np.float32)
    u, v = flow[..., 0], flow[..., 1]
    grad[:, :-1] += _sum_sq(u[:, :-1] - u[:, 1:], v[:, :-1] - v[:, 1:])
    grad[:-1, :] += _sum_sq(u[:-1, :] - u[1:, :], v[:-1, :] - v[1:, :])
    return grad


def occlusion_mask(flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
    """bool ``(H, W)`` in frame a's coordinates: True where the correspondence a -> b is unreliable.

    Lai et al. 2018 (fast_blind_video_consistency, ``utils.detect_occlusion``), same thresholds:

    1. forward-backward check: with ``flow_ba_w = warp(flow_ba, flow_ab)`` (the backward flow
       fetched at each pixel's match), ``|flow_ab + flow_ba_w|² > 0.01 (|flow_ab|² +
       |flow_ba_w|²) + 0.5``;
    2. motion boundary: ``|∇flow_ab|² > 0.01 |flow_ab|² + 0.002``;
    3. out of frame (:func:`out_of_frame`): our addition. Lai et al. have no such test; their
       warping clamps to the edge, so a pixel whose match left the frame passes the check under
       a global motion and its edge-replicated sample counts as an error.

    ``detect_occlusion(fw_flow, bw_flow)`` reads as if the mask were in frame 2's coordinates
    (it warps its first argument by its second and tests the second's gradient), but
    ``compute_flow_occlusion.py`` calls it as ``detect_occlusion(bw_flow, fw_flow)``: the mask it
    stores is in frame t's coordinates, the one ``evaluate_WarpError.py`` applies to frame t+1
    warped back to t. That is the mask computed here with ``flow_ab`` the forward flow.
    """
    check_flow(flow_ab, "flow_ab")
    check_flow(flow_ba, "flow_ba")
    if flow_ab.shape != flow_ba.shape:
        raise ValueError(f"flows differ in size: {flow_ab.shape} and {flow_ba.shape}")
    map_x, map_y = remap_maps(flow_ab)
    flow_ba_w = warp_with_maps(flow_ba, map_x, map_y)
    mag_ab = flow_magnitude_sq(flow_ab)
    inconsistent = flow_magnitude_sq(flow_ab + flow_ba_w) > 0.01 * (mag_ab + flow_magnitude_sq(flow_ba_w)) + 0.5
    boundary = flow_gradient_sq(flow_ab) > 0.01 * mag_ab + 0.002
    return inconsistent | boundary | _outside(map_x, map_y)


@dataclass(frozen=True)
class PairGeometry:
    """How frame t maps onto frame t+1, estimated once from the input video and shared by every
    colorized row: ``flow`` from t to t+1, ``valid`` = not :func:`occlusion_mask` (frame t's
    coordinates)."""

    flow: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        check_flow(self.flow)
        if self.valid.dtype != np.bool_ or self.valid.shape != self.flow.shape[:2]:
            raise ValueError(
                f"valid must be bool of shape {self.flow.shape[:2]}, got {self.valid.dtype} {self.valid.shape}"
            )

    @cached_property
    def maps(self) -> tuple[np.ndarray, np.ndarray]:
        """``cv2.remap`` maps of :attr:`flow`, computed once however many rows warp with them."""
        return remap_maps(self.flow)

    @cached_property
    def valid_count(self) -> int:
        return int(np.count_nonzero(self.valid))


def pair_geometry(gray_t: np.ndarray, gray_t1: np.ndarray, estimator: FlowEstimator) -> PairGeometry:
    """Both flows between frames t and t+1 and the mask of reliable pixels of frame t."""
    flow_fw = estimator(gray_t, gray_t1)
    flow_bw = estimator(gray_t1, gray_t)
    return PairGeometry(flow=flow_fw, valid=~occlusion_mask(flow_fw, flow_bw))
