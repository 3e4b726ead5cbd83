"""A temporal stabiliser of the predicted ab: per-frame colorization flickers, because the
network sees every frame afresh and a region's most likely bin can change from one frame to
the next. The L frames are known exactly, so motion is estimated on them, and each frame's
ab becomes a blend of its own prediction and the previous *output* carried along the flow:

    out_t = c * warp(out_{t-1}, flow_{t->t-1}) + (1 - c) * predicted_t

with a per-pixel confidence ``c = strength * reliable * exp(-dL^2 / 2 sigma^2)``:

- ``reliable``: the forward-backward check and the motion-boundary test of Lai et al. 2018
  (``detect_occlusion``), plus pixels whose match lies out of the frame;
- ``dL``: the disagreement in L* between the frame and the previous frame warped onto it,
  a check the gray frames give for free (a wrong match lands on other lightness);
- a scene cut (too few pixels reliably matched) resets the state: the new shot starts from
  its own prediction.

Why this and not the learned methods of the literature: Lai et al. 2018 and TCVC (Liu et al.
2021) need trained networks (weights cannot be downloaded here, and training them needs video
data this project lacks); Deep Video Prior (Lei et al. 2020) trains a network per video,
minutes of GPU time per clip. Bonneel et al. 2015 solve a gradient-domain problem per frame to
keep the frame's own detail; here the stabilised signal is chroma at a low resolution, which
has no detail to keep (the detail is in the full-resolution L), so their data term reduces to
the blend above. It is the recursive filter along the flow that these methods share, and it
costs two small DIS flows per frame on the CPU.

Frames whose shorter side is below :data:`~lit_colorize.video.flow.MIN_FLOW_SIDE` (OpenCV's
DIS refuses them: "the input image must have either width or height >= 12") are stabilised
without motion: the
previous output is carried in place (flow zero), weighted by the L* check alone, which holds
colors where the lightness does not change; :attr:`TemporalStabilizer.without_flow` says so.

The blend is in ab, so a region whose prediction alternates between two bins settles on a
colour between them (the price: it can be less saturated than either).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lit_colorize.errors import ConfigError
from lit_colorize.video.flow import MIN_FLOW_SIDE, FlowEstimator, occlusion_mask, remap_maps, warp_with_maps
from lit_colorize.video.flow import Preset as FlowPreset

L_TO_GRAY = 255.0 / 100.0  # L* in [0, 100] -> the uint8 gray frames the flow is estimated on


@dataclass(frozen=True)
class StabilizerSettings:
    """``strength``: the weight of the carried-over output where the match is fully reliable
    (0: per-frame; the memory is about 1 / (1 - strength) frames). ``flow_size``: the shorter
    side at which flow is estimated and ab blended (smaller videos: their own size).
    ``l_sigma``: the L* disagreement (L* units) at which a match counts about half.
    ``cut_fraction``: a frame where fewer pixels than this share are reliably matched to the
    previous one starts a new shot."""

    strength: float = 0.85
    flow_size: int = 128
    l_sigma: float = 5.0
    cut_fraction: float = 0.4
    preset: FlowPreset = "fast"

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength < 1.0:
            raise ConfigError(f"stabiliser strength must be in [0, 1), got {self.strength!r}")
        if self.flow_size < 16:
            raise ConfigError(f"stabiliser flow_size must be at least 16 pixels, got {self.flow_size!r}")
        if not self.l_sigma > 0:
            raise ConfigError(f"stabiliser l_sigma must be positive, got {self.l_sigma!r}")
        if not 0.0 <= self.cut_fraction <= 1.0:
            raise ConfigError(f"stabiliser cut_fraction must be in [0, 1], got {self.cut_fraction!r}")


@dataclass
class StabilizedFrame:
    """The stabilised ab (one per temperature, (h, w, 2) float32 in ab units), whether this
    frame started a new shot, and the share of its pixels reliably matched to the previous."""

    ab: list[np.ndarray]
    cut: bool
    reliable: float


class TemporalStabilizer:
    """Stabilises one video's ab, frame after frame (call :meth:`reset` between videos).
    Holds only the previous frame's gray, L* and output: memory is flat in the video's length."""

    def __init__(self, settings: StabilizerSettings | None = None) -> None:
        self.settings = settings or StabilizerSettings()
        self._flow = FlowEstimator(self.settings.preset)
        self.frame_index = 0
        self.cuts: list[int] = []  # frame indices that started a new shot (after the first)
        self._previous: tuple[np.ndarray, np.ndarray, list[np.ndarray]] | None = None
        #: True once a frame was too small for optical flow and was stabilised without motion.
        self.without_flow = False
        #: The latest frame's flows (to the previous frame, from the previous frame), or None (the
        #: first frame, or one too small for flow): what carries keyframe hints (:mod:`.keyframes`).
        self.flows: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        self.frame_index, self.cuts, self._previous, self.without_flow, self.flows = 0, [], None, False, None

    def _still_confidence(self, lightness: np.ndarray) -> np.ndarray:
        """Frames too small for flow: the previous output stays in place, trusted where the
        lightness agrees with the previous frame's."""
        disagreement = (lightness - self._previous[1]) * np.float32(1.0 / self.settings.l_sigma)
        return np.exp(np.float32(-0.5) * disagreement * disagreement)

    def confidence(self, gray: np.ndarray, lightness: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        """Where each pixel of this frame is in the previous one (``cv2.remap`` maps), and the
        confidence in [0, 1] that it sees the same surface there."""
        previous_gray, previous_l, _ = self._previous
        to_previous = self._flow(gray, previous_gray)
        from_previous = self._flow(previous_gray, gray)
        self.flows = (to_previous, from_previous)
        maps = remap_maps(to_previous)
        disagreement = lightness - warp_with_maps(previous_l, *maps)
        disagreement *= np.float32(1.0 / self.settings.l_sigma)
        confidence = np.exp(np.float32(-0.5) * disagreement * disagreement)
        confidence[occlusion_mask(to_previous, from_previous)] = 0.0
        return maps, confidence

    def __call__(self, lightness: np.ndarray, ab: Sequence[np.ndarray]) -> StabilizedFrame:
        """``lightness``: L* (h, w) float32 of this frame; ``ab``: the predicted ab per
        temperature, each (h, w, 2) float32 at the same size."""
        lightness = np.ascontiguousarray(lightness, dtype=np.float32)
        for one in ab:
            if one.shape != (*lightness.shape, 2):
                raise ValueError(f"ab {one.shape} does not match L {lightness.shape}; expected (h, w, 2)")
        gray = np.clip(lightness * L_TO_GRAY + 0.5, 0, 255).astype(np.uint8)
        ab = [np.ascontiguousarray(one, dtype=np.float32) for one in ab]
        if self._previous is not None and self._previous[0].shape != gray.shape:
            raise ValueError(f"frame size changed from {self._previous[0].shape} to {gray.shape} within one video")
        cut, reliable, output = True, 0.0, ab
        self.flows = None
        if self._previous is not None:
            if min(gray.shape) < MIN_FLOW_SIDE:
                self.without_flow = True
                maps, confidence = None, self._still_confidence(lightness)
            else:
                maps, confidence = self.confidence(gray, lightness)
            reliable = float(np.mean(confidence > 0.5))
            cut = reliable < self.settings.cut_fraction
            if cut:
                self.cuts.append(self.frame_index)
            else:
                weight = (np.float32(self.settings.strength) * confidence)[..., None]
                # out = predicted + weight * (carried - predicted): one temporary less than the textbook form
                output = []
                for previous, predicted in zip(self._previous[2], ab):
                    carried = warp_with_maps(previous, *maps) if maps is not None else previous.copy()
                    carried -= predicted
                    carried *= weight
                    carried += predicted
                    output.append(carried)
        self._previous = (gray, lightness, output)
        self.frame_index += 1
        return StabilizedFrame(output, cut and self.frame_index > 1, reliable)
