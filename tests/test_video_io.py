"""Streamed video reading and writing (lit_colorize.video.io): timing and size kept through a
roundtrip, audio carried over (copied byte for byte, or re-encoded to AAC where the container
refuses the codec), one-line errors for bad files, and atomic output under exceptions and kill -9.
Odd files made here as cameras and phones make them: stereo PCM in AVI, MPEG-TS files joined
with ``cat``, rotation metadata, subtitles, Vorbis."""

from __future__ import annotations

import hashlib
import os
import signal
import warnings
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from lit_colorize.atomic import is_partial, remove_stale_partials  # noqa: E402
from lit_colorize.errors import ConfigError  # noqa: E402
from lit_colorize.video import io as video_io  # noqa: E402
from lit_colorize.video.io import (  # noqa: E402
    VideoReader,
    VideoReadError,
    VideoWriter,
    VideoWriteError,
    has_video_suffix,
    next_pts,
    probe_video,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


# --- synthetic files ------------------------------------------------------------------------
def gradient(index: int, width: int = 32, height: int = 24) -> np.ndarray:
    """A frame that differs from its neighbours, so a lost or repeated frame shows."""
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None, None]
    rgb = np.concatenate([np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1)),
                          np.full((height, width, 1), (index * 37) % 256)], axis=2)
    return rgb.astype(np.uint8)


def make_video(path: Path, frames: int = 5, codec: str = "mjpeg", width: int = 32, height: int = 24,
               audio: str | None = None, fmt: str | None = None, layout: str = "mono", seconds: float = 1.0,
               rotation: int | None = None) -> Path:
    """A small video made with PyAV: MJPEG (every packet a whole picture) unless told otherwise,
    10 fps, and ``seconds`` of a 440 Hz tone (``layout``: mono or stereo) when ``audio`` names an
    audio encoder. ``rotation``: a display matrix turning it by that many degrees counterclockwise
    (PyAV's and FFmpeg's sign; a phone's "rotate=90" is -90)."""
    container = av.open(str(path), "w", format=fmt)
    video = container.add_stream(codec, rate=10)
    video.width, video.height = width, height
    video.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    if rotation is not None:
        video.set_display_rotation(rotation)
    options = {"strict": "experimental"} if audio == "vorbis" else {}  # FFmpeg's own Vorbis encoder
    sound = container.add_stream(audio, rate=48000, layout=layout, options=options) if audio else None
    container.start_encoding()  # the header is written even when no frame follows
    for index in range(frames):
        frame = av.VideoFrame.from_ndarray(gradient(index, width, height), format="rgb24")
        frame.pts = index
        container.mux(video.encode(frame))
    container.mux(video.encode(None))
    if sound is not None:
        samples = round(48000 * seconds)
        tone = (np.sin(2 * np.pi * 440 * np.arange(samples) / 48000) * 8000).astype(np.int16)
        channels = 2 if layout == "stereo" else 1
        for start in range(0, samples, 960):
            interleaved = np.repeat(tone[start : start + 960], channels)[None]  # s16 is packed: L R L R ...
            chunk = av.AudioFrame.from_ndarray(interleaved, format="s16", layout=layout)
            chunk.sample_rate, chunk.pts = 48000, start
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    container.close()
    return path


def audio_packets(path: Path) -> tuple[str, int, str, float]:
    """The first audio stream's codec, packet count, hash of all payloads, and end time in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        digest, count, end = hashlib.sha256(), 0, 0.0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            digest.update(bytes(packet))
            count += 1
            end = max(end, float((packet.pts + packet.duration) * packet.time_base))
        return stream.codec_context.name, count, digest.hexdigest(), end


def copy_frames(source: Path, dst: Path, **writer_args) -> list[float]:
    """Decodes ``source`` and writes every frame to ``dst``; returns the source's frame times."""
    times = []
    with VideoReader(source) as reader, VideoWriter(dst, reader.info, preset="ultrafast", **writer_args) as writer:
        for frame in reader:
            writer.write(frame.rgb, frame.pts)
            times.append(frame.time)
    return times


def read_times(path: Path) -> list[float]:
    with VideoReader(path) as reader:
        return [frame.time for frame in reader]


def assert_one_line_error(error: pytest.ExceptionInfo, path: Path) -> None:
    message = str(error.value)
    assert str(path) in message
    assert "\n" not in message


# --- roundtrip ------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_roundtrip_keeps_size_count_and_variable_frame_times(shared_data: Path, tmp_path: Path, suffix: str) -> None:
    source = shared_data / "video" / "demo_skeleton.mp4"
    dst = tmp_path / f"out{suffix}"
    source_times = copy_frames(source, dst)
    assert len(source_times) == 72
    assert max(np.diff(source_times)) > 0.15  # the 2.2 s -> 2.4 s gap: the timing really is variable
    info = probe_video(dst)
    assert (info.width, info.height, info.codec) == (1920, 1080, "h264")
    times = read_times(dst)
    assert len(times) == 72
    half_tick = float(info.time_base) / 2  # 1/30720 s in .mp4 (the source's time base), 0.5 ms in .mkv
    np.testing.assert_allclose(times, source_times, rtol=0, atol=half_tick)
    assert not any(is_partial(name) for name in os.listdir(tmp_path))


def test_frames_survive_the_roundtrip(tmp_path: Path) -> None:
    source = make_video(tmp_path / "src.mkv", frames=6, width=64, height=48)
    dst = tmp_path / "out.mp4"
    with VideoReader(source) as reader:
        originals = [frame.rgb for frame in reader]
    copy_frames(source, dst, crf=0)
    with VideoReader(dst) as reader:
        written = [frame.rgb for frame in reader]
    assert len(written) == len(originals)
    for before, after in zip(originals, written):  # crf 0; what differs is the RGB <-> YUV rounding
        assert np.abs(before.astype(int) - after.astype(int)).mean() < 3


def test_odd_sizes_are_padded_by_one_pixel_or_kept_in_yuv444p(tmp_path: Path) -> None:
    source = make_video(tmp_path / "odd.mkv", codec="mpeg4", width=33, height=17)
    assert (probe_video(source).width, probe_video(source).height) == (33, 17)
    copy_frames(source, tmp_path / "padded.mp4")
    copy_frames(source, tmp_path / "exact.mp4", odd_size="yuv444p")
    with VideoReader(tmp_path / "padded.mp4") as reader:
        padded = next(iter(reader)).rgb
    assert padded.shape == (18, 34, 3)
    # the added column and row repeat their neighbours (no black border)
    assert np.abs(padded[:, 33].astype(int) - padded[:, 32].astype(int)).max() <= 8
    assert np.abs(padded[17].astype(int) - padded[16].astype(int)).max() <= 8
    exact = probe_video(tmp_path / "exact.mp4")
    assert (exact.width, exact.height) == (33, 17)
    assert len(read_times(tmp_path / "exact.mp4")) == 5


def test_output_containers_without_exact_h264_timing_are_refused_at_construction(tmp_path: Path) -> None:
    info = probe_video(make_video(tmp_path / "src.mkv"))
    for name in ("out.webm", "out.avi", "out.gif"):
        with pytest.raises(ConfigError, match="use .mp4 or .mkv"):
            VideoWriter(tmp_path / name, info)
    with pytest.raises(ConfigError, match="crf"):
        VideoWriter(tmp_path / "out.mp4", info, crf=60)
    assert sorted(os.listdir(tmp_path)) == ["src.mkv"]


def test_write_refuses_a_frame_of_the_wrong_size_or_a_pts_that_does_not_increase(tmp_path: Path) -> None:
    info = probe_video(make_video(tmp_path / "src.mkv"))
    with pytest.raises(ValueError, match="pts must increase"):
        with VideoWriter(tmp_path / "out.mp4", info, preset="ultrafast") as writer:
            writer.write(gradient(0), 3)
            with pytest.raises(ValueError, match="uint8"):
                writer.write(gradient(0)[:-1], 4)
            writer.write(gradient(1), 3)
    assert sorted(os.listdir(tmp_path)) == ["src.mkv"]


def test_missing_and_duplicate_pts_become_strictly_increasing() -> None:
    """A frame without pts takes the previous + one nominal frame (100 ticks: 1/10 s in .mkv's
    1 ms ticks); a repeated or earlier pts takes the previous + 1 tick."""
    previous, given = None, []
    for pts in [0, None, 300, 300, 250]:
        previous = next_pts(pts, previous, nominal=100)
        given.append(previous)
    assert given == [0, 100, 300, 301, 302]
    assert next_pts(None, None, nominal=100) == 0


# --- audio ----------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_opus_audio_is_copied_byte_for_byte(shared_data: Path, tmp_path: Path, suffix: str) -> None:
    source = shared_data / "video" / "flipping_a_pancake.mkv"
    dst = tmp_path / f"out{suffix}"
    copy_frames(source, dst, audio_source=source)
    info = probe_video(dst)
    assert info.has_audio and info.audio_codec == "opus"
    codec, count, digest, end = audio_packets(source)
    assert audio_packets(dst) == (codec, count, digest, pytest.approx(end, abs=0.002))
    assert len(read_times(dst)) == 310


@pytest.mark.parametrize(
    ("container", "codec", "suffix"), [("avi", "pcm_mulaw", ".mp4"), ("mkv", "libopus", ".mov")]
)
def test_audio_the_container_refuses_is_reencoded_to_aac(tmp_path: Path, container: str, codec: str, suffix: str) -> None:
    source = make_video(tmp_path / f"src.{container}", frames=10, audio=codec)
    dst = tmp_path / f"out{suffix}"
    copy_frames(source, dst, audio_source=source)
    name, count, _, end = audio_packets(dst)
    assert name == "aac" and count >= 40  # one second at 48 kHz is 47 AAC frames of 1024
    assert end == pytest.approx(audio_packets(source)[3], abs=0.05)


def test_stereo_pcm_from_an_avi_goes_into_mp4_as_stereo_aac(tmp_path: Path) -> None:
    """A camera's AVI: PCM whose layout is "2 channels" (unordered). Before: .mp4 took the
    header and refused it at the trailer ("unsupported channel layout 2 channels"), after
    every frame was encoded, and the message blamed the folder."""
    source = make_video(tmp_path / "camera.avi", frames=10, audio="pcm_s16le", layout="stereo", fmt="avi")
    with av.open(str(source)) as container:
        assert container.streams.audio[0].codec_context.layout.name == "2 channels"
    dst = tmp_path / "out.mp4"
    copy_frames(source, dst, audio_source=source)
    name, count, _, end = audio_packets(dst)
    assert name == "aac" and count >= 40 and end == pytest.approx(1.0, abs=0.05)
    with av.open(str(dst)) as container:
        assert container.streams.audio[0].codec_context.layout.name == "stereo"
    assert len(read_times(dst)) == 10


def test_a_stream_refused_at_the_end_names_ffmpegs_reason(tmp_path: Path, monkeypatch) -> None:
    """Where a refusal still comes only at the trailer (here: the trial is made to say yes), the
    error is FFmpeg's own, not the folder's, and nothing is left behind."""
    source = make_video(tmp_path / "camera.avi", frames=3, audio="pcm_s16le", layout="stereo", fmt="avi")
    monkeypatch.setattr(video_io, "accepts_copy", lambda *args: True)
    with pytest.raises(VideoWriteError, match="unsupported channel layout 2 channels") as error:
        copy_frames(source, tmp_path / "out.mp4", audio_source=source)
    assert_one_line_error(error, tmp_path / "out.mp4")
    assert "free space" not in str(error.value) and "writable" not in str(error.value)
    assert sorted(os.listdir(tmp_path)) == ["camera.avi"]


def test_vorbis_is_reencoded_to_aac_for_mp4_and_copied_into_mkv(tmp_path: Path) -> None:
    """Vorbis is no MP4 codec (players refuse it), though FFmpeg's muxer writes it."""
    source = make_video(tmp_path / "src.mkv", frames=10, audio="vorbis", layout="stereo", fmt="matroska")
    copy_frames(source, tmp_path / "out.mp4", audio_source=source)
    copy_frames(source, tmp_path / "out.mkv", audio_source=source)
    assert audio_packets(tmp_path / "out.mp4")[0] == "aac"
    assert audio_packets(tmp_path / "out.mkv")[:3] == audio_packets(source)[:3]


def joined_ts(tmp_path: Path) -> Path:
    """``cat a.ts b.ts``: two 0.9 s MPEG-TS files with sound; the second's timestamps start again."""
    parts = [make_video(tmp_path / f"{name}.ts", frames=9, codec="libx264", audio="aac", layout="stereo", fmt="mpegts",
                        seconds=0.9) for name in "ab"]  # fmt: skip
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(part.read_bytes() for part in parts))
    return joined


def test_timestamps_that_reset_continue_the_time_line_with_one_warning(tmp_path: Path) -> None:
    """Before: every frame after the reset got the previous pts + 1 tick, so the second file's
    0.9 s played in 0.1 ms and the output lasted 0.9 s instead of 1.8 s, without a word."""
    source = joined_ts(tmp_path)
    with av.open(str(source)) as container:
        raw = [frame.pts for frame in container.decode(container.streams.video[0])]
    assert raw[9] < raw[8]  # the reset is really in the file
    with pytest.warns(UserWarning, match=r"joined\.ts: its timestamps jump back at frame 9") as caught:
        times = read_times(source)
    assert len([w for w in caught if "jump back" in str(w.message)]) == 1
    np.testing.assert_allclose(np.diff(times), 0.1, atol=1e-6)
    dst = tmp_path / "out.mp4"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copy_frames(source, dst, audio_source=source)
    out = read_times(dst)
    assert len(out) == 18 and out[-1] - out[0] == pytest.approx(1.7, abs=1e-3)
    _, count, _, end = audio_packets(dst)
    assert count >= 80 and end - out[0] == pytest.approx(1.8, abs=0.1)  # the sound goes on too


def b_frame_avi(path: Path, codec: str, frames: int = 12) -> Path:
    """An AVI at 25 fps whose encoder reorders frames (2 B-frames between references), as old
    DivX/Xvid camera files are: frame i shown at i/25 s, its blue channel (i * 37) % 256."""
    with av.open(str(path), "w", format="avi") as container:
        options = {"bf": "2", "g": "12"} if codec == "mpeg4" else {"x264-params": "bframes=2:b-adapt=0:keyint=12"}
        video = container.add_stream(codec, rate=25, options=options)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        if codec == "mpeg4":
            video.codec_context.max_b_frames = 2
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(gradient(index), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


@pytest.mark.parametrize("codec", ["mpeg4", "libx264"])
def test_an_avi_with_b_frames_keeps_every_frames_time_and_the_time_base(tmp_path: Path, codec: str) -> None:
    """Before: AVI stores no presentation times and FFmpeg's guess added the decoder's delay, so
    frames came 40 ms late (pts 1..12 for frames 0..11), and the .mp4 got time base 1/12800."""
    source = b_frame_avi(tmp_path / f"{codec}.avi", codec)
    with av.open(str(source)) as container:
        kinds = [frame.pict_type for frame in container.decode(container.streams.video[0])]
    assert av.video.frame.PictureType.B in kinds  # the reordering is really in the file
    expected = [Fraction(index, 25) for index in range(12)]
    with VideoReader(source) as reader:
        decoded = list(reader)
        assert reader.info.time_base == Fraction(1, 25)
    assert [Fraction(frame.pts, 25) for frame in decoded] == expected
    blue = [float(frame.rgb[..., 2].mean()) for frame in decoded]
    np.testing.assert_allclose(blue, [(index * 37) % 256 for index in range(12)], atol=12)  # frame i at time i
    dst = tmp_path / "out.mp4"
    copy_frames(source, dst)
    with av.open(str(dst)) as container:  # read back by PyAV alone, not by the reader under test
        stream = container.streams.video[0]
        assert Fraction(stream.time_base) == Fraction(1, 25)
        times = sorted(Fraction(frame.pts) * Fraction(stream.time_base) for frame in container.decode(stream))
    assert times == expected


@pytest.mark.parametrize(("matrix", "turn"), [(-90, 90), (90, 270)])
def test_rotation_metadata_is_applied_so_frames_come_upright(tmp_path: Path, matrix: int, turn: int) -> None:
    """A phone's portrait clip: landscape pictures and a display matrix. ffmpeg shows a matrix
    of -90 (its "rotate=90") turned 90 degrees clockwise, one of 90 turned counterclockwise
    (fftools' autorotate: transpose=clock / cclock). Before: the output lay on its side."""
    source = make_video(tmp_path / "phone.mp4", frames=3, codec="libx264", rotation=matrix)
    info = probe_video(source)
    assert (info.width, info.height, info.rotation) == (24, 32, turn)
    clockwise = -1 if turn == 90 else 1  # np.rot90's k: positive turns counterclockwise
    with VideoReader(source) as reader:
        first = next(iter(reader)).rgb
    assert first.shape == (32, 24, 3)
    assert np.abs(first.astype(int) - np.rot90(gradient(0), clockwise).astype(int)).mean() < 6
    dst = tmp_path / "out.mp4"
    copy_frames(source, dst)
    out = probe_video(dst)
    assert (out.width, out.height, out.rotation) == (24, 32, 0)  # written upright, no matrix
    with VideoReader(dst) as reader:
        assert np.abs(next(iter(reader)).rgb.astype(int) - first.astype(int)).mean() < 6


def with_subtitles(tmp_path: Path) -> Path:
    """An MJPEG clip in Matroska with an SRT subtitle stream (muxed from a real .srt file)."""
    srt = tmp_path / "lines.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,400\nLine one\n\n2\n00:00:00,500 --> 00:00:00,900\nLine two\n\n")
    path = tmp_path / "subtitled.mkv"
    with av.open(str(srt)) as lines, av.open(str(path), "w") as container:
        video = container.add_stream("mjpeg", rate=10)
        video.width, video.height, video.pix_fmt = 32, 24, "yuvj420p"
        text = container.add_stream_from_template(lines.streams.subtitles[0])
        container.start_encoding()
        for packet in lines.demux():
            if packet.size:
                packet.stream = text
                container.mux(packet)
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(gradient(index), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


def subtitle_texts(path: Path) -> list[list[bytes]]:
    with av.open(str(path)) as container:
        return [[bytes(p) for p in container.demux(stream) if p.size] for stream in container.streams.subtitles]


def test_subtitles_are_copied_into_mkv_and_counted_where_dropped(tmp_path: Path) -> None:
    source = with_subtitles(tmp_path)
    assert probe_video(source).subtitles == 1 and subtitle_texts(source) == [[b"Line one", b"Line two"]]
    for suffix, dropped, texts in ((".mkv", 0, [[b"Line one", b"Line two"]]), (".mp4", 1, [])):
        with VideoReader(source) as reader, VideoWriter(tmp_path / f"out{suffix}", reader.info, preset="ultrafast",
                                                       audio_source=source) as writer:  # fmt: skip
            for frame in reader:
                writer.write(frame.rgb, frame.pts)
        assert writer.dropped_subtitles == dropped
        assert subtitle_texts(tmp_path / f"out{suffix}") == texts
        assert len(read_times(tmp_path / f"out{suffix}")) == 10


# --- bad input ------------------------------------------------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.mp4"
    with pytest.raises(VideoReadError, match="not found") as error:
        probe_video(path)
    assert_one_line_error(error, path)


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(VideoReadError, match="not a video, or corrupt or truncated") as error:
        probe_video(path)
    assert_one_line_error(error, path)
    with pytest.raises(VideoReadError), VideoReader(path):
        pass


def test_truncated_file_with_its_moov_atom_at_the_end(shared_data: Path, tmp_path: Path) -> None:
    data = (shared_data / "video" / "demo_skeleton.mp4").read_bytes()
    atoms, offset = [], 0
    while offset < len(data):
        atoms.append(data[offset + 4 : offset + 8])
        offset += int.from_bytes(data[offset : offset + 4], "big")
    assert atoms[-1] == b"moov"  # so the first half holds media data and no index
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="corrupt or truncated") as error:
        probe_video(path)
    assert_one_line_error(error, path)


def test_zero_frame_file(tmp_path: Path) -> None:
    path = make_video(tmp_path / "empty.avi", frames=0)
    assert probe_video(path).width == 32  # the stream is there...
    with pytest.raises(VideoReadError, match="has no decodable video frames") as error:
        with VideoReader(path) as reader:
            list(reader)
    assert_one_line_error(error, path)


def test_audio_only_file(tmp_path: Path) -> None:
    path = tmp_path / "sound.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("aac", rate=48000)
    for index in range(5):
        frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 48000, index * 1024
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    with pytest.raises(VideoReadError, match=r"has no video stream \(audio only\?\)") as error:
        probe_video(path)
    assert_one_line_error(error, path)


def test_codec_without_decoder_is_named(tmp_path: Path) -> None:
    data = make_video(tmp_path / "mjpeg.avi").read_bytes()
    assert data.count(b"MJPG") == 2  # the stream header's handler and the bitmap header's compression
    path = tmp_path / "unknown.avi"
    path.write_bytes(data.replace(b"MJPG", b"ZZZZ"))
    with pytest.raises(VideoReadError, match="no decoder for its codec.*ZZZZ") as error:
        probe_video(path)
    assert_one_line_error(error, path)


def test_one_bad_packet_is_skipped_counted_and_warned(tmp_path: Path) -> None:
    good = make_video(tmp_path / "good.mkv", frames=6)
    path = tmp_path / "one_bad.mkv"
    garbage = np.random.default_rng(1).bytes
    with av.open(str(good)) as source, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        packets = [packet for packet in source.demux(source.streams.video[0]) if packet.size]
        for index, packet in enumerate(packets):
            if index == 2:
                broken = av.Packet(garbage(packet.size))
                broken.pts, broken.dts, broken.duration = packet.pts, packet.dts, packet.duration
                broken.time_base = packet.time_base
                packet = broken
            packet.stream = stream
            out.mux(packet)
    with VideoReader(path) as reader, pytest.warns(UserWarning, match=r"one_bad\.mkv: skipped 1 packet"):
        frames = list(reader)
    assert len(frames) == 5
    assert reader.bad_packets == 1
    assert [frame.pts for frame in frames] == [0, 100, 300, 400, 500]
    with VideoReader(good) as reader:
        assert len(list(reader)) == 6 and reader.bad_packets == 0


def test_real_clips_of_other_codecs_decode(shared_data: Path) -> None:
    path = shared_data / "video" / "vtest_first20s.avi"  # MS-MPEG4 v3 in AVI
    info = probe_video(path)
    assert (info.codec, info.width, info.height, info.average_rate) == ("msmpeg4", 768, 576, Fraction(10))
    with VideoReader(path) as reader:
        first = next(iter(reader))
    assert first.rgb.shape == (576, 768, 3) and first.rgb.dtype == np.uint8 and first.rgb.std() > 10
    assert has_video_suffix(path) and has_video_suffix("A.MKV") and not has_video_suffix("a.png")


# --- atomic output --------------------------------------------------------------------------
# The writer without the package's __init__, which loads torch and the model (~10 s): the child
# registers an empty ``lit_colorize`` package, so only atomic, errors and video.io are imported.
WRITE_SLOWLY = """
import sys, time, types
from pathlib import Path
package = types.ModuleType("lit_colorize"); package.__path__ = [str(Path(sys.argv[1]) / "lit_colorize")]
sys.modules["lit_colorize"] = package
import numpy as np
from lit_colorize.video.io import VideoWriter, probe_video
info = probe_video(sys.argv[2])
with VideoWriter(Path(sys.argv[3]), info, preset="ultrafast") as writer:
    for index in range(100000):
        writer.write(np.full((info.height, info.width, 3), index % 256, np.uint8), index)
        time.sleep(0.01)
"""


def test_kill_9_while_encoding_leaves_only_a_removable_partial(tmp_path: Path) -> None:
    source = make_video(tmp_path / "src.mkv")
    folder = tmp_path / "out"
    folder.mkdir()
    child = subprocess.Popen([sys.executable, "-c", WRITE_SLOWLY, str(REPO_ROOT), str(source), str(folder / "long.mp4")])
    try:
        deadline = time.monotonic() + 60
        while not any(folder.iterdir()) and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)  # some frames into the file
        assert child.poll() is None, "the writer ended before it was killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    names = os.listdir(folder)
    assert len(names) == 1 and names[0].startswith(".long.") and names[0].endswith(".partial.mp4")
    assert not (folder / "long.mp4").exists()
    assert remove_stale_partials(folder) == [folder / names[0]]
    assert not any(folder.iterdir())


def test_exception_in_the_block_leaves_nothing_and_keeps_an_existing_file(tmp_path: Path) -> None:
    source = make_video(tmp_path / "src.mkv")
    info = probe_video(source)
    dst = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="stop"), VideoWriter(dst, info, preset="ultrafast") as writer:
        writer.write(gradient(0), 0)
        raise RuntimeError("stop")
    assert sorted(os.listdir(tmp_path)) == ["src.mkv"]
    dst.write_bytes(b"the user's earlier video")
    with pytest.raises(RuntimeError, match="stop"), VideoWriter(dst, info, audio_source=source) as writer:
        writer.write(gradient(0), 0)
        raise RuntimeError("stop")
    assert dst.read_bytes() == b"the user's earlier video"
    assert sorted(os.listdir(tmp_path)) == ["out.mp4", "src.mkv"]


def test_a_temporary_file_removed_by_someone_else_is_named_in_the_error(tmp_path: Path) -> None:
    """Before: "check the folder exists, is writable and has free space" for a file that a
    clean-up in another container had deleted."""
    info = probe_video(make_video(tmp_path / "src.mkv"))
    dst = tmp_path / "out.mp4"
    with pytest.raises(VideoWriteError, match=r"temporary file \S+ vanished before it was published") as error:
        with VideoWriter(dst, info, preset="ultrafast") as writer:
            (partial,) = [p for p in tmp_path.iterdir() if is_partial(p.name)]
            index = 0
            while partial.stat().st_size == 0:  # until FFmpeg has opened it and written into it
                writer.write(gradient(index), index)
                index += 1
            partial.unlink()
            writer.write(gradient(index), index)
    assert_one_line_error(error, dst)
    assert "free space" not in str(error.value)
    assert sorted(os.listdir(tmp_path)) == ["src.mkv"]


def test_a_missing_output_folder_is_a_write_error_naming_the_file(tmp_path: Path) -> None:
    info = probe_video(make_video(tmp_path / "src.mkv"))
    dst = tmp_path / "no" / "such" / "folder" / "out.mp4"
    with pytest.raises(VideoWriteError) as error, VideoWriter(dst, info):
        pass
    assert_one_line_error(error, dst)
    assert isinstance(error.value, OSError)
