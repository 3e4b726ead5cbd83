"""Streamed video reading and writing with PyAV: one frame in memory at a time, whatever the
video's length, and clear one-line errors for files that cannot be used.

Reading (:class:`VideoReader`) decodes packet by packet with FFmpeg's threaded decoder. A packet
that fails to decode is skipped and counted (real files sometimes carry one broken packet; one
lost frame is better than no video); a file with no decodable frame at all is an error. The
yielded ``pts`` are strictly increasing, because the writer's muxers refuse anything else:
a frame without a pts gets the previous one plus the nominal frame duration, a frame whose pts
is not above the previous one gets the previous one plus one tick (the smallest change that
keeps the order; a duplicate pts is a muxing glitch, not a real gap). A pts that goes back by
a frame or more is a reset (files joined with ``cat a.ts b.ts``, a recorder restarted): the
time line goes on from the previous frame plus one frame, and so do the audio's timestamps;
a warning says so once. Rotation metadata (a display matrix, as phones write) is applied: the
frames come upright, and :class:`VideoInfo` gives the displayed size. AVI stores no presentation
times, only one frame per chunk in decode order; FFmpeg's guess adds the decoder's delay, so with
B-frames every frame came one frame late. With B-frames the frames, which leave the decoder in
display order, take the chunks' times in increasing order (:class:`DisplayTimes`): frame k of
the file keeps time k, and a skipped chunk stays a gap.

Writing (:class:`VideoWriter`) encodes H.264 with libx264 in the source stream's time base,
with the source's pts, so frame timing (variable frame rate included) is kept exactly (Matroska
stores milliseconds: there the times are rounded to 1 ms). .mp4 and .mov keep the source's time
base itself (FFmpeg would raise one under 1/10000, 1/25 to 1/12800, by doubling). Decisions:

* Sizes: yuv420p halves the chroma planes, so libx264 refuses odd widths or heights
  (``avcodec_open2`` fails in this FFmpeg), and H.264 cannot crop 4:2:0 by one pixel either.
  ``odd_size="pad"`` (default) repeats the last column/row to reach an even size, so the output
  is one pixel larger and plays everywhere; ``odd_size="yuv444p"`` keeps the exact size with
  full-resolution chroma (H.264 High 4:4:4, which FFmpeg, VLC and mpv play, but browsers and most
  phones do not). Even sizes, the usual case (4:2:0 sources are even), are written as they are.
* Containers: .mp4 (and .m4v), .mov and .mkv. .webm allows only VP8/VP9/AV1 and .avi keeps no
  presentation timestamps (no B-frames, no variable frame rate), so both, and any other suffix,
  raise :class:`ConfigError` at construction.
* Audio: every audio stream of ``audio_source`` is carried over. Its packets are copied
  unchanged when the output container accepts the codec (tried on an in-memory header: Opus,
  AAC, MP3, FLAC, PCM s16 go into .mp4; .mov refuses Opus, Vorbis and FLAC; .mkv takes
  anything), else decoded and re-encoded to AAC; never dropped. "Accepts" is a real trial:
  the header, the stream's first packet and the trailer are written into memory before any
  frame is encoded, because some refusals come only at the trailer (stereo PCM from an AVI,
  whose layout is "2 channels", unordered: "unsupported channel layout" in .mp4). Vorbis is
  never copied into .mp4/.mov: FFmpeg writes it, but it is no registered MP4 codec and
  players do not play it. Audio packets are muxed as the video frames reach their time, the
  rest at close, so memory stays flat.
* Subtitles: copied where the output container takes them as they are (text subtitles into
  .mkv); otherwise dropped, and :attr:`VideoWriter.dropped_subtitles` says how many (predict
  prints a line).
* Atomic: the file is written under :func:`lit_colorize.atomic.atomic_path`'s hidden temporary
  name (which keeps the container suffix) and published as ``dst`` only when the ``with`` block
  ends without an exception; otherwise it is removed and ``dst`` is untouched. Without
  ``overwrite`` a ``dst`` that appeared meanwhile (another run) is kept and
  :class:`VideoExistsError` raised. A write that fails names FFmpeg's own reason; the folder,
  disk and permissions are named only when the error is one of theirs.
"""

from __future__ import annotations

import errno
import heapq
import io
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

try:
    import av
    import av.logging
except ImportError:
    raise ImportError("video needs PyAV: pip install -e '.[video]'") from None

from lit_colorize.atomic import TargetExists, TemporaryFileVanished, atomic_path
from lit_colorize.errors import ConfigError, UserError
from lit_colorize.files import VIDEO_SUFFIXES, has_video_suffix  # noqa: F401 - the one list, beside the image suffixes
#: Output suffix -> FFmpeg muxer: the containers that keep H.264 with exact presentation times.
OUTPUT_FORMATS: dict[str, str] = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
OddSize = Literal["pad", "yuv444p"]
# The usual channel order for a count, for audio whose container gives none (AVI, WAV).
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}

# Audio codecs never copied into a container, though FFmpeg's muxer would write them.
_NEVER_COPIED = {"mp4": {"vorbis"}, "mov": {"vorbis"}}
# Errors of the file system, where the folder, the disk or the permissions are the cause.
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR,
                errno.EISDIR, errno.EIO, errno.EFBIG, errno.ESTALE}  # fmt: skip

# Demuxers whose packets carry decode order only (one frame per chunk), no presentation time.
_DECODE_ORDER_FORMATS = {"avi"}

# What FFmpeg raises for a file it cannot read or write (its OSError subclasses included).
_AV_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError, OSError)


class VideoReadError(UserError, ValueError):
    """A video that cannot be read: missing, not a video, corrupt, no video stream, no decoder."""


class VideoWriteError(UserError, OSError):
    """A video that cannot be written (disk full, no permission, missing folder, a stream the
    container refuses); names the file and the cause."""


class VideoExistsError(VideoWriteError, FileExistsError):
    """The output appeared while the video was encoded (another run) and was kept."""


@contextmanager
def ffmpeg_messages() -> Iterator[None]:
    """FFmpeg's error messages, which PyAV drops unless logging is on, go into the exceptions
    raised inside the block ("last error log: [mp4] unsupported channel layout"), not to stderr."""
    level = av.logging.get_level()
    if level is not None and level >= av.logging.ERROR:
        yield
        return
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False):
            yield
    finally:
        av.logging.set_level(level)


@dataclass(frozen=True)
class VideoInfo:
    """What a video's first video stream says about itself. ``frame_count`` is the container's
    count or estimate (None where it has none, as in Matroska); only decoding gives the truth."""

    path: Path
    width: int
    height: int
    frame_count: int | None
    average_rate: Fraction | None
    time_base: Fraction
    duration: float | None
    codec: str
    has_audio: bool
    audio_codec: str | None
    rotation: int = 0  # clockwise degrees applied to the stored frames (0, 90, 180, 270)
    subtitles: int = 0  # subtitle streams


@dataclass
class DecodedFrame:
    """One frame: ``rgb`` uint8 (H, W, 3); ``pts`` in the stream's time base; ``time`` in seconds."""

    rgb: np.ndarray
    pts: int
    time: float


def _reason(error: BaseException) -> str:
    """FFmpeg's reason without the file name it appends (the message names the file already),
    and the message FFmpeg logged with it ("[mp4] unsupported channel layout 2 channels"),
    which says more than the error code, where logging was on (:func:`ffmpeg_messages`)."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    log = getattr(error, "log", None)  # (level, component, message) of FFmpeg's last error log
    if isinstance(error, av.error.FFmpegError) and isinstance(log, tuple) and len(log) == 3 and log[2]:
        text = f"{text} ([{log[1]}] {str(log[2]).strip()})"
    return " ".join(str(text).split())


def _stream_description(container: Any, index: int) -> str:
    """FFmpeg's one-line description of a stream ("none (ZZZZ / 0x5A5A5A5A), ..."): PyAV has no
    codec context for a codec without a decoder, so this is the only place its tag shows.
    ``dumps_format`` logs at INFO level, so the level is raised for the call and restored."""
    level = av.logging.get_level()
    try:
        av.logging.set_level(av.logging.INFO)
        dump = container.dumps_format()
    except Exception:  # noqa: BLE001 (a description only: never let it hide the real error)
        return "unknown"
    finally:
        av.logging.set_level(level)
    for line in dump.splitlines():
        if f"Stream #0:{index}" in line and "Video:" in line:
            return line.split("Video:", 1)[1].split(",", 1)[0].strip()
    return "unknown"


def _open_input(path: Path) -> Any:
    """``path`` opened for reading, or VideoReadError for a missing, non-video or broken file."""
    if not path.exists():
        raise VideoReadError(f"video file not found: {path}; check the path")
    if path.is_dir():
        raise VideoReadError(f"{path} is a folder, not a video file; give the path of a video")
    try:
        return av.open(str(path), "r")
    except _AV_ERRORS as error:
        raise VideoReadError(
            f"cannot open video {path}: not a video, or corrupt or truncated ({_reason(error)}); "
            "check that it plays, or download or export it again"
        ) from error


def _video_stream(container: Any, path: Path) -> Any:
    """The first video stream, checked to have a decoder."""
    if not container.streams.video:
        audio_only = " (audio only?)" if container.streams.audio else ""
        raise VideoReadError(f"{path} has no video stream{audio_only}; give a file with video in it")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VideoReadError(
            f"cannot decode video {path}: FFmpeg has no decoder for its codec "
            f"({_stream_description(container, stream.index)}); convert it to H.264 first, e.g. "
            "with ffmpeg -i IN -c:v libx264 OUT.mp4"
        )
    return stream


def display_rotation(degrees: float) -> int:
    """The clockwise turn (0, 90, 180, 270) that shows a frame upright, from PyAV's
    ``VideoFrame.rotation`` (FFmpeg's ``av_display_rotation_get``: counterclockwise, so a phone's
    "rotate=90" reads -90; ffmpeg's own autorotate turns by its negative). Angles that are no
    multiple of 90 are not applied (0)."""
    clockwise = round(-degrees) % 360
    return clockwise if clockwise in (0, 90, 180, 270) else 0


def _rotation(path: Path) -> int:
    """The display rotation of ``path``'s first frame (the display matrix FFmpeg attaches to
    each frame); 0 when there is none or no frame decodes. A separate open: the caller's
    container stays at its first packet."""
    try:
        with av.open(str(path), "r") as container:
            for frame in container.decode(container.streams.video[0]):
                return display_rotation(getattr(frame, "rotation", 0) or 0)
    except (*_AV_ERRORS, IndexError, StopIteration):
        pass
    return 0


def _info(container: Any, stream: Any, path: Path) -> VideoInfo:
    audio = container.streams.audio[0] if container.streams.audio else None
    rotation = _rotation(path)
    width, height = stream.codec_context.width, stream.codec_context.height
    if rotation in (90, 270):
        width, height = height, width
    if stream.duration is not None:
        duration: float | None = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = None
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        frame_count=stream.frames or None,
        average_rate=stream.average_rate or stream.guessed_rate or None,
        time_base=Fraction(stream.time_base),
        duration=duration,
        codec=stream.codec_context.name,
        has_audio=audio is not None,
        audio_codec=audio.codec_context.name if audio is not None and audio.codec_context is not None else None,
        rotation=rotation,
        subtitles=len(container.streams.subtitles),
    )


def probe_video(path: str | Path) -> VideoInfo:
    """What ``path``'s first video stream says about itself, without decoding a frame.
    Raises VideoReadError for a missing, non-video, corrupt or undecodable file."""
    path = Path(path)
    with _open_input(path) as container:
        return _info(container, _video_stream(container, path), path)


def _rgb(frame: Any, reformatter: Any) -> np.ndarray:
    """The frame as RGB through one reused ``VideoReformatter``: ``frame.to_ndarray`` builds a new
    swscale context per frame, which costs 4x the decoding on small clips (docs/video_decode_cpu.txt).
    A full-range ("pc") YUV frame is read as full range, which swscale would otherwise take for
    limited range and stretch (phones write such files)."""
    if frame.color_range == av.video.reformatter.ColorRange.JPEG:
        rgb = reformatter.reformat(frame, format="rgb24", src_color_range="JPEG", dst_color_range="JPEG")
    else:
        rgb = reformatter.reformat(frame, format="rgb24")
    return rgb.to_ndarray()


def upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """``rgb`` turned clockwise by ``rotation`` degrees (0, 90, 180, 270), contiguous."""
    return np.ascontiguousarray(np.rot90(rgb, k=-(rotation // 90))) if rotation else rgb


def next_pts(pts: int | None, previous: int | None, nominal: int) -> int:
    """The pts a decoded frame is given, so that the yielded ones strictly increase: a missing
    pts is the previous one plus the nominal frame duration (0 for the first frame); a pts not
    above the previous one becomes the previous one plus one tick."""
    if pts is None:
        return 0 if previous is None else previous + nominal
    if previous is not None and pts <= previous:
        return previous + 1
    return pts


class Timeline:
    """The strictly increasing pts of one stream's frames (:func:`next_pts`), continued across
    resets: a pts a frame or more below the previous one (``cat a.ts b.ts``) is shifted to follow
    it by one frame, and so is every pts after it. ``resets`` lists (frame index, seconds in
    the source, seconds in the output) of each."""

    def __init__(self, nominal: int) -> None:
        self.nominal = nominal
        self.offset = 0
        self.previous: int | None = None
        self.frames = 0
        self.resets: list[tuple[int, int, int]] = []

    def __call__(self, pts: int | None) -> int:
        if pts is not None and self.previous is not None and pts + self.offset <= self.previous - self.nominal:
            self.offset = self.previous + self.nominal - pts
            self.resets.append((self.frames, pts, pts + self.offset))
        self.previous = next_pts(None if pts is None else pts + self.offset, self.previous, self.nominal)
        self.frames += 1
        return self.previous


class DisplayTimes:
    """Presentation times for a container that stores only decode order (AVI): each packet's dts
    goes in, and each decoded frame, which the decoder returns in display order, takes the
    smallest time not yet taken. Display times are the decode slots reordered, so frame k gets
    slot k whatever the B-frames; a packet that failed to decode gives its slot up (a gap)."""

    def __init__(self) -> None:
        self._slots: list[int] = []

    def add(self, dts: int | None) -> None:
        if dts is not None:
            heapq.heappush(self._slots, dts)

    def discard(self, dts: int | None) -> None:
        if dts is not None and dts in self._slots:
            self._slots.remove(dts)
            heapq.heapify(self._slots)

    def take(self) -> int | None:
        """The next frame's time; None when more frames came out than packets went in."""
        return heapq.heappop(self._slots) if self._slots else None


class VideoReader:
    """Frames of one video file in presentation order, streamed: ``with VideoReader(p) as r:
    for frame in r: ...``. ``bad_packets`` counts the packets skipped because they failed to
    decode (a warning names the file and the count); ``frames_read`` counts what was yielded;
    ``timestamp_resets`` counts the resets of the time line that were joined (one warning)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.bad_packets = 0
        self.frames_read = 0
        self.timestamp_resets = 0
        self._container: Any = None
        self._stream: Any = None
        self.info: VideoInfo | None = None

    def __enter__(self) -> VideoReader:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if self._container is not None:
            return
        container = _open_input(self.path)
        try:
            self._stream = _video_stream(container, self.path)
            self.info = _info(container, self._stream, self.path)
        except BaseException:
            container.close()
            raise
        self._stream.thread_type = "AUTO"
        self._container = container

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _warn_reset(self, timeline: Timeline, time_base: Fraction) -> None:
        self.timestamp_resets = len(timeline.resets)
        if self.timestamp_resets == 1:
            frame, source, output = timeline.resets[0]
            warnings.warn(
                f"{self.path}: its timestamps jump back at frame {frame} (to {float(source * time_base):.3f} s: "
                f"joined files, or a recording restarted); the frames from there on are continued at "
                f"{float(output * time_base):.3f} s",
                stacklevel=3,
            )

    def _nominal_ticks(self) -> int:
        """One frame's duration in time-base ticks (1 when the rate is unknown)."""
        assert self.info is not None
        if not self.info.average_rate:
            return 1
        return max(1, round(1 / (self.info.average_rate * self.info.time_base)))

    def _decoded(self) -> Iterator[Any]:
        """Frames as FFmpeg decodes them, bad packets skipped; demux's final empty packet flushes
        the decoder, so frames it holds back (B-frames, threads) come out too. In a container
        without presentation times whose decoder reorders frames (B-frames) the frames' pts are
        set by :class:`DisplayTimes`; without B-frames FFmpeg's pts are the chunks' own times, and
        a not-coded frame (a drop) stays the gap it is."""
        reorders = bool(self._stream.codec_context.has_b_frames)
        display = DisplayTimes() if reorders and self._container.format.name in _DECODE_ORDER_FORMATS else None
        for packet in self._container.demux(self._stream):
            if display is not None and packet.size:
                display.add(packet.dts)
            try:
                frames = packet.decode()
            except av.error.EOFError:  # flushed already
                frames = []
            except av.error.FFmpegError:  # InvalidDataError mostly: this packet is lost, not the video
                self.bad_packets += 1
                if display is not None:
                    display.discard(packet.dts)
                continue
            for frame in frames:
                if display is not None:
                    frame.pts = display.take()
                yield frame

    def __iter__(self) -> Iterator[DecodedFrame]:
        self.open()
        assert self.info is not None
        time_base = self.info.time_base
        timeline = Timeline(self._nominal_ticks())
        reformatter = av.video.reformatter.VideoReformatter()
        try:
            for frame in self._decoded():
                pts = timeline(frame.pts)
                if len(timeline.resets) > self.timestamp_resets:
                    self._warn_reset(timeline, time_base)
                self.frames_read += 1
                rgb = upright(_rgb(frame, reformatter), self.info.rotation)
                yield DecodedFrame(rgb=rgb, pts=pts, time=float(pts * time_base))
        except av.error.FFmpegError as error:  # a read error of the file itself, not of one packet
            raise VideoReadError(f"cannot read video {self.path}: {_reason(error)}; the file may be truncated") from error
        if self.bad_packets:
            warnings.warn(
                f"{self.path}: skipped {self.bad_packets} packet(s) that failed to decode "
                f"({self.frames_read} frames read)",
                stacklevel=2,
            )
        if self.frames_read == 0:
            skipped = f" ({self.bad_packets} packet(s) failed to decode)" if self.bad_packets else ""
            raise VideoReadError(f"{self.path} has no decodable video frames{skipped}; check that it plays")


def accepts_copy(format_name: str, stream: Any, first: Any | None) -> bool:
    """Whether ``format_name`` takes ``stream``'s packets as they are: a real trial in memory,
    the header, the first packet and the trailer (where .mp4 checks an audio layout), the only
    test FFmpeg's muxers answer reliably."""
    if stream.codec_context is not None and stream.codec_context.name in _NEVER_COPIED.get(format_name, ()):
        return False
    probe = av.open(io.BytesIO(), "w", format=format_name)
    try:
        with ffmpeg_messages():
            copy = probe.add_stream_from_template(stream)
            probe.start_encoding()
            if first is not None:
                packet = av.Packet(bytes(first))
                packet.pts, packet.dts, packet.duration, packet.time_base = first.pts, first.dts, first.duration, first.time_base
                packet.stream = copy
                probe.mux(packet)
            probe.close()
        return True
    except (av.error.FFmpegError, ValueError):
        return False
    finally:
        try:
            probe.close()
        except (av.error.FFmpegError, ValueError):
            pass


def _first_packets(path: Path, streams: list[Any], limit: int = 2000) -> dict[int, Any]:
    """The first non-empty packet of each of ``streams`` (by index), from a separate open of
    ``path``, reading at most ``limit`` packets."""
    wanted = {stream.index for stream in streams}
    found: dict[int, Any] = {}
    with av.open(str(path), "r") as container:
        chosen = [container.streams[index] for index in sorted(wanted)]
        for count, packet in enumerate(container.demux(*chosen)):
            if packet.size and packet.stream.index not in found:
                found[packet.stream.index] = packet
            if len(found) == len(wanted) or count >= limit:
                break
    return found


class _Track:
    """One audio or subtitle stream of the source on its way into the output: copied, or (audio
    only) re-encoded to AAC. Its timestamps go on across resets as the video's do."""

    def __init__(self, source: Any, output: Any, format_name: str, first: Any | None) -> None:
        self.source = source
        self.copy = accepts_copy(format_name, source, first)
        if self.copy:
            self.output = output.add_stream_from_template(source)
        else:
            rate = source.codec_context.sample_rate or 48000
            self.output = output.add_stream("aac", rate=rate)
            layout = source.codec_context.layout
            if layout.name.endswith("channels"):  # an unordered layout ("2 channels", from AVI or WAV)
                layout = av.AudioLayout(_LAYOUTS.get(layout.nb_channels, "stereo"))  # AAC needs an order
            self.output.layout = layout
        self.packets = 0
        self._offset = 0
        self._last: int | None = None
        self._end = 0

    def stamp(self, packet: Any) -> int | None:
        """The packet's dts (or pts) on the continued time line; shifts the packet to it."""
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is None:
            return None
        if self._last is not None and stamp + self._offset < self._last:  # a reset: go on from the end
            self._offset = self._end - stamp
        if self._offset:
            if packet.pts is not None:
                packet.pts += self._offset
            if packet.dts is not None:
                packet.dts += self._offset
        self._last = stamp + self._offset
        self._end = max(self._end, self._last + (packet.duration or 0))
        return self._last

    def write(self, container: Any, packet: Any) -> None:
        if self.copy:
            packet.stream = self.output
            container.mux(packet)
        else:
            for frame in packet.decode():
                container.mux(self.output.encode(frame))
        self.packets += 1

    def finish(self, container: Any) -> None:
        if not self.copy:
            for frame in self.source.decode(None):
                container.mux(self.output.encode(frame))
            container.mux(self.output.encode(None))


class VideoWriter:
    """H.264 video written atomically to ``dst`` (see the module docstring for the rules):
    ``with VideoWriter(dst, info) as w: w.write(rgb, pts)``. ``info`` is the source's
    :class:`VideoInfo`: its size, time base and rate; ``pts`` are the source's, strictly
    increasing. ``audio_source``'s audio (and, where the container takes them, subtitle) streams
    are carried over. ``overwrite``: publish over an existing ``dst`` (else VideoExistsError
    when one appeared meanwhile; callers check before they start)."""

    def __init__(
        self,
        dst: str | Path,
        info: VideoInfo,
        crf: int = 18,
        preset: str = "medium",
        audio_source: str | Path | None = None,
        *,
        odd_size: OddSize = "pad",
        overwrite: bool = True,
    ) -> None:
        self.dst = Path(dst)
        self.overwrite = overwrite
        self.info = info
        suffix = self.dst.suffix.lower()
        if suffix not in OUTPUT_FORMATS:
            raise ConfigError(
                f"cannot write video {self.dst}: H.264 output goes into {', '.join(sorted(OUTPUT_FORMATS))}; "
                "use .mp4 or .mkv (.webm takes only VP8/VP9/AV1, .avi keeps no frame timestamps)"
            )
        if not 0 <= crf <= 51:
            raise ConfigError(f"crf must be between 0 (lossless) and 51, got {crf}; 18 is visually lossless")
        if odd_size not in ("pad", "yuv444p"):
            raise ConfigError(f"odd_size must be 'pad' or 'yuv444p', got {odd_size!r}")
        self.format_name = OUTPUT_FORMATS[suffix]
        self.crf = crf
        self.preset = preset
        self.audio_source = None if audio_source is None else Path(audio_source)
        odd = info.width % 2 == 1 or info.height % 2 == 1
        self.pixel_format = "yuv444p" if odd and odd_size == "yuv444p" else "yuv420p"
        pad = odd and odd_size == "pad"
        #: The size written: the source's, or one pixel more where odd sizes are padded.
        self.width = info.width + (info.width % 2 if pad else 0)
        self.height = info.height + (info.height % 2 if pad else 0)
        self.frames_written = 0
        self._last_pts: int | None = None
        self._atomic: Any = None
        self._container: Any = None
        self._video: Any = None
        self._audio_input: Any = None
        self._audio_packets: Iterator[Any] | None = None
        self._pending: Any = None
        self._pending_stamp: int | None = None  # its dts on the continued time line
        self._tracks: dict[int, _Track] = {}
        #: Subtitle streams of ``audio_source`` the container does not take as they are.
        self.dropped_subtitles = 0

    # --- opening and closing ------------------------------------------------------------------
    def __enter__(self) -> VideoWriter:
        self._atomic = atomic_path(self.dst, replace=self.overwrite)
        try:
            temporary = self._atomic.__enter__()
        except OSError as error:
            self._atomic = None
            raise self._write_error(error) from error
        try:
            with ffmpeg_messages():
                self._open(temporary)
        except BaseException as error:
            self._abort(type(error), error, error.__traceback__)
            if isinstance(error, _AV_ERRORS) and not isinstance(error, UserError):
                raise self._write_error(error) from error
            raise
        return self

    def _open(self, temporary: Path) -> None:
        if self.audio_source is not None:
            self._audio_input = _open_input(self.audio_source)
        self._container = av.open(str(temporary), "w", format=self.format_name, options=self._muxer_options())
        rate = self.info.average_rate
        self._video = self._container.add_stream(
            "libx264", rate=rate, options={"crf": str(self.crf), "preset": self.preset}
        )
        self._video.width = self.width
        self._video.height = self.height
        self._video.pix_fmt = self.pixel_format
        self._video.time_base = self.info.time_base
        self._video.codec_context.time_base = self.info.time_base
        if self._audio_input is not None:
            self._add_tracks(self._audio_input)

    def _muxer_options(self) -> dict[str, str]:
        """.mp4/.mov: the video track's timescale set to the source's time base (exact when its
        numerator is 1), which FFmpeg would otherwise double until it reaches 10000."""
        if self.format_name in ("mp4", "mov"):
            return {"video_track_timescale": str(self.info.time_base.denominator)}
        return {}

    def _add_tracks(self, source: Any) -> None:
        """Every audio stream (checked, before any frame is encoded, to go in as it is or as
        AAC) and every subtitle stream the container takes as it is."""
        audio, subtitles = list(source.streams.audio), list(source.streams.subtitles)
        for stream in audio:
            if stream.codec_context is None:
                raise VideoReadError(f"cannot carry the audio of {self.audio_source}: FFmpeg has no decoder for stream {stream.index}")
        firsts = _first_packets(self.audio_source, audio + subtitles) if audio or subtitles else {}
        for stream in audio:
            self._tracks[stream.index] = _Track(stream, self._container, self.format_name, firsts.get(stream.index))
        for stream in subtitles:
            if accepts_copy(self.format_name, stream, firsts.get(stream.index)):
                self._tracks[stream.index] = _Track(stream, self._container, self.format_name, firsts.get(stream.index))
            else:
                self.dropped_subtitles += 1
        if self._tracks:
            self._audio_packets = iter(source.demux(*(source.streams[index] for index in sorted(self._tracks))))

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is not None:
            self._abort(kind, error, traceback)
            return
        try:
            with ffmpeg_messages():
                self._finish()
        except BaseException as failure:
            self._abort(type(failure), failure, failure.__traceback__)
            if isinstance(failure, _AV_ERRORS) and not isinstance(failure, UserError):
                raise self._write_error(failure) from failure
            raise
        atomic, self._atomic = self._atomic, None
        try:
            atomic.__exit__(None, None, None)  # fsync, then rename over dst
        except OSError as failure:
            raise self._write_error(failure) from failure

    def _finish(self) -> None:
        self._container.mux(self._video.encode(None))
        self._mux_audio_until(math.inf)
        for track in self._tracks.values():
            track.finish(self._container)
        self._close_inputs()

    def _close_inputs(self) -> None:
        container, self._container = self._container, None
        audio, self._audio_input = self._audio_input, None
        try:
            if container is not None:
                container.close()
        finally:
            if audio is not None:
                audio.close()

    def _abort(
        self, kind: type[BaseException], error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Closes everything without finishing the file, then removes the temporary file."""
        try:
            self._close_inputs()
        except _AV_ERRORS:
            pass  # the file is thrown away; the error that brought us here is the one to show
        atomic, self._atomic = self._atomic, None
        if atomic is not None:
            try:
                atomic.__exit__(kind, error, traceback)
            except BaseException as raised:  # the generator re-raises the error it was given
                if raised is not error:
                    raise

    def _write_error(self, error: BaseException) -> VideoWriteError:
        """The cause in one line: another run's file, a vanished temporary file, the file
        system's error (folder, space, permissions), or FFmpeg's own message."""
        if isinstance(error, TargetExists):
            return VideoExistsError(
                f"{self.dst} exists: another run wrote it while this one encoded; it was kept "
                "(pass --overwrite to replace it, or --skip_existing to keep it)"
            )
        if isinstance(error, TemporaryFileVanished):
            return VideoWriteError(f"cannot write video {self.dst}: {error.strerror}")
        if isinstance(error, OSError) and error.errno in _DISK_ERRORS:
            return VideoWriteError(
                f"cannot write video {self.dst}: {_reason(error)}; check the folder exists, is writable and has free space"
            )
        return VideoWriteError(f"cannot write video {self.dst}: FFmpeg refused it: {_reason(error)}")

    # --- writing ------------------------------------------------------------------------------
    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Encodes one RGB frame (uint8, (H, W, 3) of the source's size) shown at ``pts``
        (source time base), then muxes the audio up to that time."""
        if self._container is None:
            raise RuntimeError("VideoWriter.write outside its with block")
        expected = (self.info.height, self.info.width, 3)
        if rgb.dtype != np.uint8 or rgb.shape != expected:
            raise ValueError(f"a frame for {self.dst} must be uint8 {expected}, got {rgb.dtype} {rgb.shape}")
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"frame pts must increase: {pts} after {self._last_pts} ({self.dst})")
        if rgb.shape[:2] != (self.height, self.width):
            rgb = np.pad(rgb, ((0, self.height - rgb.shape[0]), (0, self.width - rgb.shape[1]), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = int(pts)
        frame.time_base = self.info.time_base
        try:
            with ffmpeg_messages():
                self._container.mux(self._video.encode(frame))
                self._mux_audio_until(float(pts * self.info.time_base))
        except _AV_ERRORS as error:
            if isinstance(error, UserError):
                raise
            raise self._write_error(error) from error
        self._last_pts = int(pts)
        self.frames_written += 1

    def _mux_audio_until(self, seconds: float) -> None:
        """Muxes the source's audio (and subtitle) packets that start at or before ``seconds``."""
        if self._audio_packets is None:
            return
        while True:
            if self._pending is None:
                packet = next(self._audio_packets, None)
                if packet is None:
                    self._audio_packets = None
                    return
                if packet.size == 0:
                    continue  # demux's end-of-stream marker: flushing is done in finish()
                self._pending, self._pending_stamp = packet, self._tracks[packet.stream.index].stamp(packet)
            packet, stamp = self._pending, self._pending_stamp
            if stamp is not None and float(stamp * packet.time_base) > seconds:
                return
            self._pending = None
            if stamp is not None:
                self._tracks[packet.stream.index].write(self._container, packet)
