"""Colorizing a video as a stream: frames are decoded, colorized in batches on the model's
device, stabilised in time and encoded one after another, so memory does not grow with the
video's length. Every frame is colorized as a photo is at full resolution: the network sees
L at its working size, and ab (stabilised at a moderate size) is upsampled and joined with
the frame's own full-resolution L.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lit_colorize.fullres import DEFAULT_UPSAMPLING, check_upsampling, full_resolution_l, network_input, render, working_size
from lit_colorize.network import ColorizationNet
from lit_colorize.options import DecodingChoice, checked_temperatures
from lit_colorize.user_hints import HintError, UserHint, working_hints
from lit_colorize.video.io import VideoInfo, VideoReader, VideoReadError, VideoWriter, probe_video
from lit_colorize.video.flow import MIN_FLOW_SIDE, single_opencv_thread
from lit_colorize.video.keyframes import HintCarrier, parse_keyframe_hints
from lit_colorize.video.stabilize import StabilizerSettings, TemporalStabilizer

DEFAULT_BATCH_FRAMES = 8  # frames per network call: enough to fill a GPU at working sizes, little memory
DEFAULT_CRF = 18  # x264's "visually lossless" end of its scale


class FrameSizeError(ValueError):
    """A frame of another size or kind than the video's first (one output video has one size)."""


def resized(image: Tensor, size: tuple[int, int]) -> Tensor:
    """(C, H, W) -> float (C, h, w), bilinear, antialiased when shrinking: a frame at the stabiliser's size."""
    shrink = image.shape[-2] > size[0]
    return F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False, antialias=shrink)[0]


def stabilizer_size(height: int, width: int, flow_short_side: int, network_short_side: int) -> tuple[int, int]:
    """(h, w) at which flow is estimated and ab blended: the shorter side ``flow_short_side``,
    never below what the network predicts (ab keeps its resolution), never above the frame."""
    short = min(height, width, max(flow_short_side, network_short_side))
    scale = short / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


class FrameColorizer:
    """Colorizes a sequence of same-sized frames (uint8 RGB (H, W, 3), color or gray) of one
    video; yields, per frame, one uint8 RGB (H, W, 3) per temperature. With
    ``temporal_consistency`` the ab of each frame passes through a :class:`TemporalStabilizer`
    before rendering. ``cuts`` lists the frames where a new shot was detected so far;
    ``without_flow`` is True when the frames were too small for optical flow (stabilised
    without motion; a warning says so once per video). ``global_hint`` (a global-hints model):
    one vector (:func:`~lit_colorize.global_hints.global_hint_vector`) given to every frame, so a
    whole clip follows one reference or palette; a model without global hints refuses it here.
    ``frame_hints`` (a model trained with hints): each frame's local hints by frame index, in the
    frames' pixels (keyframe hints carried through their shot: :mod:`lit_colorize.video.keyframes`)."""

    def __init__(
        self,
        net: ColorizationNet,
        temperatures: Sequence[float | DecodingChoice] | None = None,
        working_size: int | None = None,
        temporal_consistency: bool = True,
        stabilizer: StabilizerSettings | None = None,
        batch_frames: int = DEFAULT_BATCH_FRAMES,
        upsampling: str = DEFAULT_UPSAMPLING,
        global_hint: Tensor | None = None,
        frame_hints: Mapping[int, Sequence[UserHint]] | None = None,
    ) -> None:
        if batch_frames < 1:
            raise ValueError(f"batch_frames must be at least 1, got {batch_frames}")
        if global_hint is not None:
            net.global_hint_input(1, global_hint, global_hint)  # refused (no global hints, wrong size) before any frame
        if frame_hints and not net.hints:
            raise HintError("hints were given for the video's frames, but this model was trained without hints (hints: false)")
        self.net = net
        self.global_hint = global_hint
        self.frame_hints = frame_hints or {}
        self.decodings = net.decodings_for(checked_temperatures(temperatures))
        self.upsampling = check_upsampling(upsampling)
        self.short_side = int(working_size or net.predict_short_side)
        self.temporal_consistency = temporal_consistency
        self.stabilizer_settings = stabilizer or StabilizerSettings()
        self.batch_frames = batch_frames
        self._stabilizer: TemporalStabilizer | None = None
        self._size: tuple[int, ...] | None = None
        self._checked = 0  # frames of this video checked so far

    @property
    def cuts(self) -> list[int]:
        """The frames of the latest video where the stabiliser found a new shot (after the first)."""
        return list(self._stabilizer.cuts) if self._stabilizer is not None else []

    @property
    def without_flow(self) -> bool:
        return self._stabilizer is not None and self._stabilizer.without_flow

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def sizes(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """For frames of ``height`` x ``width``: the network's working size and the stabiliser's."""
        size = working_size(height, width, self.short_side, self.net.size_multiple)
        return size, stabilizer_size(height, width, self.stabilizer_settings.flow_size, min(size))

    @torch.inference_mode()
    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[list[np.ndarray]]:
        stabilizer = TemporalStabilizer(self.stabilizer_settings) if self.temporal_consistency else None
        self._stabilizer = stabilizer
        self._size, self._checked = None, 0
        batch: list[np.ndarray] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == self.batch_frames:
                yield from self._colorize_batch(batch, stabilizer)
                batch = []
        if batch:
            yield from self._colorize_batch(batch, stabilizer)

    def _colorize_batch(self, frames: list[np.ndarray], stabilizer: TemporalStabilizer | None) -> Iterator[list[np.ndarray]]:
        if self._size is None:
            self._size = tuple(frames[0].shape)
        height, width = self._size[:2]
        for frame in frames:
            if frame.ndim != 3 or frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                raise FrameSizeError(
                    f"frame {self._checked} is {frame.dtype} {frame.shape}; video frames must all be uint8 RGB "
                    f"({height}, {width}, 3) like the first"
                )
            self._checked += 1
        device = self.device
        lightness = [full_resolution_l(torch.from_numpy(frame).to(device).permute(2, 0, 1)) for frame in frames]
        size, blend_size = self.sizes(height, width)
        l_norm = torch.cat([network_input(one, size) for one in lightness])
        channels = None
        first = self._checked - len(frames)
        if any(self.frame_hints.get(first + i) for i in range(len(frames))):
            channels = torch.cat([working_hints(self.frame_hints.get(first + i, []), (height, width), size, device) for i in range(len(frames))])
        ab_per_temperature = self.net.predict_ab(l_norm, self.decodings, channels, self.global_hint)
        for index, frame_l in enumerate(lightness):
            ab = [one[index] for one in ab_per_temperature]
            if stabilizer is not None:
                warned = stabilizer.without_flow
                ab = self._stabilize(stabilizer, frame_l, ab, blend_size)
                if stabilizer.without_flow and not warned:
                    warnings.warn(
                        f"frames of {width}x{height} are below the {MIN_FLOW_SIDE} px optical flow needs: stabilised "
                        "without motion (colors held where the lightness does not change)",
                        stacklevel=4,
                    )
            yield [render(frame_l, one, upsampling=self.upsampling).permute(1, 2, 0).cpu().numpy() for one in ab]

    @staticmethod
    def _stabilize(stabilizer: TemporalStabilizer, lightness: Tensor, ab: list[Tensor], size: tuple[int, int]) -> list[Tensor]:
        small_l = resized(lightness[None], size)[0].cpu().numpy()
        result = stabilizer(small_l, [resized(one, size).permute(1, 2, 0).cpu().numpy() for one in ab])
        return [torch.from_numpy(one).permute(2, 0, 1).to(lightness.device) for one in result.ab]


@dataclass
class VideoReport:
    """What colorizing one video did."""

    source: Path
    outputs: list[Path]
    frames: int = 0
    bad_packets: int = 0
    cuts: list[int] = field(default_factory=list)
    seconds: float = 0.0
    without_flow: bool = False  # too small for optical flow: stabilised without motion
    timestamp_resets: int = 0  # resets of the source's time line, joined
    dropped_subtitles: int = 0  # subtitle streams the output container did not take
    rotation: int = 0  # clockwise degrees applied from the source's display matrix

    def notes(self) -> list[str]:
        """One line per thing the output differs in from the source, for predict to print."""
        notes = []
        if self.without_flow:
            notes.append(f"its frames are below the {MIN_FLOW_SIDE} px optical flow needs: stabilised without motion")
        if self.timestamp_resets:
            notes.append(f"its timestamps jumped back {self.timestamp_resets} time(s) (joined files?): the time line was continued")
        if self.dropped_subtitles:
            notes.append(f"{self.dropped_subtitles} subtitle stream(s) dropped: the output container cannot take them as they are (use --writer.video_format mkv)")
        if self.rotation:
            notes.append(f"its rotation metadata was applied: turned {self.rotation} degrees clockwise, written upright")
        return notes

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else math.nan


class VideoProgress:
    """Frames done, frames/s and ETA of one video: Rich's bar in a terminal, a plain line every
    ``every_seconds`` otherwise (logs, cluster jobs, or beside another live display such as
    Lightning's bar: ``lines_only``); nothing with ``enabled=False``."""

    def __init__(
        self, name: str, total: int | None, enabled: bool = True, lines_only: bool = False, every_seconds: float = 10.0
    ) -> None:
        self.name, self.total, self.every_seconds = name, total, every_seconds
        self.done = 0
        self._start = self._last_line = time.monotonic()
        self._rich = None
        if enabled and not lines_only and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._rich = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} frames/s"), TimeRemainingColumn(), transient=False,
            )
            self._task = self._rich.add_task(name, total=total, rate="-")
            self._rich.start()
        self._lines = enabled and self._rich is None

    def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        rate = self.done / max(now - self._start, 1e-9)
        if self._rich is not None:
            self._rich.update(self._task, advance=1, rate=f"{rate:.1f}")
        elif self._lines and now - self._last_line >= self.every_seconds:
            self._last_line = now
            print(self.line(rate), file=sys.stderr, flush=True)

    def line(self, rate: float) -> str:
        if self.total:
            eta = max(self.total - self.done, 0) / rate if rate > 0 else math.inf
            return f"{self.name}: {self.done}/{self.total} frames, {rate:.1f} frames/s, ETA {eta:.0f} s"
        return f"{self.name}: {self.done} frames, {rate:.1f} frames/s"

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()


def carried_hints(colorizer: FrameColorizer, source: Path, hints: Sequence[Mapping[str, Any]]) -> dict[int, list[UserHint]]:
    """A first pass over ``source``'s frames (decoded, nothing colorized): its keyframe hints
    carried through their shots along the stabiliser's flow, at the size and with the settings
    ``colorizer`` stabilises with; each frame's hints by index. One-line errors for bad hints, a
    keyframe past the video's end, or a model that takes no hints (before any frame is decoded)."""
    if not colorizer.net.hints:
        raise HintError(f"{source}: keyframe hints were given, but this model was trained without hints (hints: false)")
    carrier: HintCarrier | None = None
    with VideoReader(source) as reader:
        for index, decoded in enumerate(reader):
            height, width = decoded.rgb.shape[:2]
            if carrier is None:
                carrier = HintCarrier(parse_keyframe_hints(hints, str(source), height, width), (height, width), colorizer.stabilizer_settings)
                small = colorizer.sizes(height, width)[1]
            elif (height, width) != carrier.frame_size:
                raise VideoReadError(f"{source}: its frame size changes (frame {index} is {width}x{height}); split it where the size changes")
            lightness = full_resolution_l(torch.from_numpy(decoded.rgb).to(colorizer.device).permute(2, 0, 1))
            carrier(resized(lightness[None], small)[0].cpu().numpy())
    if carrier is None:
        raise VideoReadError(f"{source}: it has no frames to give keyframe hints to")
    carrier.check_reached(str(source))
    return carrier.by_frame


def colorize_video(
    net: ColorizationNet,
    source: str | Path,
    outputs: Sequence[str | Path],
    temperatures: Sequence[float | DecodingChoice] | None = None,
    *,
    working_size: int | None = None,
    upsampling: str = DEFAULT_UPSAMPLING,
    temporal_consistency: bool = True,
    stabilizer: StabilizerSettings | None = None,
    crf: int = DEFAULT_CRF,
    preset: str = "medium",
    batch_frames: int = DEFAULT_BATCH_FRAMES,
    progress: bool = True,
    line_progress: bool = False,
    info: VideoInfo | None = None,
    on_frame: Callable[[int], None] | None = None,
    overwrite: bool = True,
    global_hint: Tensor | None = None,
    keyframe_hints: Sequence[Mapping[str, Any]] | None = None,
) -> VideoReport:
    """Colorizes the video ``source`` into one file per temperature (``outputs[i]`` at
    ``temperatures[i]``; None: one, the model's own decoding): H.264 yuv420p at the source's size, with its frame times and its
    audio. Each output is written under a temporary name and renamed only once complete;
    on any error (VideoReadError, VideoWriteError, Ctrl-C) no output has its final name.
    With ``overwrite`` existing outputs are replaced (callers check first: predict's
    --overwrite rules); without it an output that appeared meanwhile (another run) is kept
    and :class:`~lit_colorize.video.io.VideoExistsError` raised.
    ``progress``: a bar (a line every 10 s with ``line_progress`` or without a terminal).
    ``global_hint``: one global hint vector for every frame (:class:`FrameColorizer`), checked
    before the video is opened. ``keyframe_hints`` (a model trained with hints): ``{"frame": k,
    "x", "y", "color"[, "size"]}`` carried forward and backward through frame k's shot
    (:func:`carried_hints`: a first pass over the frames)."""
    source = Path(source)
    outputs = [Path(path) for path in outputs]
    if len(outputs) != len(temperatures or [None]):
        raise ValueError(f"one output per temperature: got {len(outputs)} outputs for {len(temperatures or [None])} temperatures")
    colorizer = FrameColorizer(net, temperatures, working_size, temporal_consistency, stabilizer, batch_frames, upsampling, global_hint)
    if keyframe_hints:
        with single_opencv_thread():  # reproducible: the same video's hints land in the same places
            colorizer.frame_hints = carried_hints(colorizer, source, keyframe_hints)
    info = info or probe_video(source)
    report = VideoReport(source, outputs)
    started = time.monotonic()
    bar = VideoProgress(source.name, info.frame_count, enabled=progress, lines_only=line_progress)
    try:
        with ExitStack() as stack:
            reader = stack.enter_context(VideoReader(source))
            writers = [
                stack.enter_context(VideoWriter(path, info, crf=crf, preset=preset, audio_source=source, overwrite=overwrite))
                for path in outputs
            ]
            times: deque[int] = deque()

            def frames() -> Iterator[np.ndarray]:
                for decoded in reader:
                    times.append(decoded.pts)
                    yield decoded.rgb

            try:
                for images in colorizer(frames()):
                    pts = times.popleft()
                    for writer, image in zip(writers, images):
                        writer.write(image, pts)
                    report.frames += 1
                    bar.advance()
                    if on_frame is not None:
                        on_frame(report.frames)
            except FrameSizeError as error:  # a stream that changes resolution midway
                raise VideoReadError(
                    f"{source}: its frame size changes ({error}); split it where the size changes, "
                    "or scale it to one size first"
                ) from None
            report.bad_packets = reader.bad_packets
            report.timestamp_resets = reader.timestamp_resets
            report.dropped_subtitles = writers[0].dropped_subtitles
    finally:
        bar.close()
    report.cuts = colorizer.cuts
    report.without_flow = colorizer.without_flow
    report.rotation = info.rotation
    report.seconds = time.monotonic() - started
    return report
