"""Local hints given on keyframes of a video, carried through their shot (issue 30).

A keyframe hint is a photo hint with the frame it is given on:
``{"frame": 12, "x": 120, "y": 45, "color": "#c03030"}`` (``x``, ``y`` in the video's own
pixels, as :mod:`lit_colorize.user_hints` reads them). It is carried to the frames after the
keyframe and to those before it, along the optical flow of the gray frames, and dropped at a
scene cut (either way) or where it leaves the frame. The flow and the cuts are the temporal
stabiliser's own (:class:`~lit_colorize.video.stabilize.TemporalStabilizer`, same settings, same
lightness at the same size), so a hint lives exactly as long as the stabiliser's memory of a
shot, and one click, with the stabiliser, keeps a color through a shot.

A point moves from frame a to frame b by the flow from a to b sampled at the point (the flow's
convention: ``frame_a(x) ≈ frame_b(x + flow_ab(x))``). Carrying backward needs the flows from
the start of the keyframe's shot up to the keyframe; they are kept only while a keyframe lies
ahead, so memory is the small flows of that stretch (about 0.2 MB a frame at the stabiliser's
128 px), and none past the last keyframe.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

try:
    import cv2
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("video needs OpenCV: pip install -e '.[video]' (opencv-python-headless)") from None

from lit_colorize.user_hints import HintError, UserHint, parse_hints, shown, working_position
from lit_colorize.video.stabilize import StabilizerSettings, TemporalStabilizer


@dataclass(frozen=True)
class KeyframeHint:
    """A checked hint (in the video's pixels) and the frame it was given on."""

    frame: int
    hint: UserHint


def parse_keyframe_hints(hints: Sequence[Mapping[str, Any]], video: str, height: int, width: int) -> list[KeyframeHint]:
    """Checked keyframe hints for a ``height`` x ``width`` video; :class:`HintError` naming the
    video and the hint (from 1) for one that cannot be used."""
    if isinstance(hints, (str, bytes, Mapping)) or not isinstance(hints, Sequence):
        raise HintError(f"{video}: keyframe hints must be a list of {{'frame', 'x', 'y', 'color'[, 'size']}}, got {shown(hints)}")
    checked = []
    for number, hint in enumerate(hints, start=1):
        frame = hint.get("frame") if isinstance(hint, Mapping) else None
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
            raise HintError(f"{video}: keyframe hint {number} ({shown(hint)}) needs a frame: a whole number from 0")
        rest = {key: value for key, value in hint.items() if key != "frame"}
        (parsed,) = parse_hints([rest], f"{video}: keyframe hint {number} (frame {frame})", height, width)
        checked.append(KeyframeHint(frame, parsed))
    return checked


def moved(points: np.ndarray, flow: np.ndarray | None) -> np.ndarray:
    """Points (N, 2) ``x, y`` in a frame's pixels, moved by ``flow`` (h, w, 2) sampled there
    (bilinear); None (a frame too small for flow): they stay."""
    if flow is None or not len(points):
        return points
    map_x, map_y = (np.ascontiguousarray(points[None, :, i], dtype=np.float32) for i in (0, 1))
    step = cv2.remap(flow, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return points + step[0]


class HintCarrier:
    """Carries keyframe hints over one video's frames, given one by one as L* (h, w) float32 at
    the stabiliser's size (:func:`~lit_colorize.video.colorize.stabilizer_size`) of frames of
    ``frame_size`` (H, W); :attr:`by_frame` then holds each frame's hints in the video's pixels.
    :meth:`check_reached` says which keyframes lay past the video's end."""

    def __init__(self, hints: Sequence[KeyframeHint], frame_size: tuple[int, int], settings: StabilizerSettings | None = None) -> None:
        self.frame_size = frame_size
        self.keyframes: dict[int, list[UserHint]] = defaultdict(list)
        for keyframe in hints:
            self.keyframes[keyframe.frame].append(keyframe.hint)
        self.last_keyframe = max(self.keyframes, default=-1)
        self.by_frame: dict[int, list[UserHint]] = defaultdict(list)
        self._stabilizer = TemporalStabilizer(settings)
        self._small: tuple[int, int] | None = None
        self._forward: list[tuple[UserHint, np.ndarray]] = []  # hints in the shot so far, at their point in this frame
        self._flows: list[np.ndarray | None] = []  # flows to the previous frame, since the shot's start, while a keyframe is ahead

    @property
    def cuts(self) -> list[int]:
        return self._stabilizer.cuts

    def _to_small(self, hint: UserHint) -> np.ndarray:
        (height, width), (h, w) = self.frame_size, self._small
        return np.array([working_position(hint.x, width, w), working_position(hint.y, height, h)], np.float32)

    def _record(self, frame: int, hint: UserHint, point: np.ndarray) -> bool:
        """Adds ``hint`` at ``point`` (small pixels) to ``frame``'s hints; False where it left the frame."""
        (height, width), (h, w) = self.frame_size, self._small
        x, y = (float(point[0]) + 0.5) * width / w - 0.5, (float(point[1]) + 0.5) * height / h - 0.5
        if not (-0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5):
            return False
        self.by_frame[frame].append(replace(hint, x=x, y=y))
        return True

    def __call__(self, lightness: np.ndarray) -> None:
        frame = self._stabilizer.frame_index
        self._small = lightness.shape
        result = self._stabilizer(lightness, [])
        if frame == 0 or result.cut:  # a new shot: nothing is carried into it
            self._forward, self._flows = [], []
        else:
            to_previous, from_previous = self._stabilizer.flows or (None, None)
            points = moved(np.array([p for _, p in self._forward], np.float32).reshape(-1, 2), from_previous)
            self._forward = [(hint, point) for (hint, _), point in zip(self._forward, points)]
            if frame <= self.last_keyframe:
                self._flows.append(to_previous)
        self._forward = [(hint, point) for hint, point in self._forward if self._record(frame, hint, point)]
        for hint in self.keyframes.get(frame, []):
            point = self._to_small(hint)
            self.by_frame[frame].append(hint)
            self._forward.append((hint, point))
            back = point[None]
            for earlier, flow in zip(range(frame - 1, -1, -1), reversed(self._flows)):  # flows[-1]: this frame to the one before
                back = moved(back, flow)
                if not self._record(earlier, hint, back[0]):
                    break
        if frame >= self.last_keyframe:
            self._flows = []

    def check_reached(self, video: str) -> None:
        """:class:`HintError` for keyframes past the last frame seen (the video is shorter)."""
        seen = self._stabilizer.frame_index
        if self.last_keyframe >= seen:
            raise HintError(f"{video}: a keyframe hint is on frame {self.last_keyframe}, but the video has {seen} frames (0 to {seen - 1})")
