"""Video colorization end to end: the temporal stabiliser against its recursion written out by
hand, scene cuts found where a person sees them, frames colorized as photos are, and
``Colorizer.colorize_video`` / ``lit-colorize predict`` on real clips (size, frame count, frame
times and sound kept; existing files and bad videos handled as for photos)."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("av", reason="video needs the video extra: pip install -e '.[video]'")
pytest.importorskip("cv2", reason="video needs the video extra: pip install -e '.[video]'")

import av  # noqa: E402

from lit_colorize import Colorizer  # noqa: E402
from lit_colorize.errors import ConfigError  # noqa: E402
from lit_colorize.video.colorize import FrameColorizer, colorize_video, stabilizer_size  # noqa: E402
from lit_colorize.video.flow import MIN_FLOW_SIDE, FlowEstimator, to_gray_u8  # noqa: E402
from lit_colorize.video.io import VideoReader, VideoReadError, VideoWriteError, probe_video  # noqa: E402
from lit_colorize.video.stabilize import StabilizerSettings, TemporalStabilizer  # noqa: E402
from tests.conftest import REPO_ROOT  # noqa: E402
from tests.test_predict_faults import files_under, make_photos, predict_args, run_in_process  # noqa: E402
from tests.test_video_io import b_frame_avi, make_video  # noqa: E402

# Hand-checked: in bikes.mp4 the shot changes between these frames and the ones before them
# (frames 29|30 pavement|man in suit, 75|76 taxi|cyclist, 136|137 cyclist|railings,
# 186|187 railings|legs, 241|242 parked bicycle|close-up), and nowhere else.
BIKES_CUTS = [30, 76, 137, 187, 242]


def textured_l(height: int, width: int, seed: int = 0) -> np.ndarray:
    """L* (H, W) float32 in about [20, 80]: smooth noise, which optical flow can follow."""
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy(rng.random((1, 1, height // 4 + 2, width // 4 + 2)).astype(np.float32))
    smooth = F.interpolate(noise, size=(height + 8, width + 8), mode="bicubic", align_corners=False)[0, 0, 4:-4, 4:-4]
    return (20 + 60 * (smooth - smooth.min()) / (smooth.max() - smooth.min())).numpy().astype(np.float32)


# --- the stabiliser -----------------------------------------------------------------------


def test_static_scene_follows_the_recursion_written_by_hand() -> None:
    """A still scene: flow 0, every pixel reliable, L identical, so each output must be
    ``s * previous + (1 - s) * predicted`` exactly (s = strength): a prediction that flickers
    between a = +10 and a = -10 settles to an amplitude of (1 - s) / (1 + s) * 10."""
    strength = 0.8
    stabilizer = TemporalStabilizer(StabilizerSettings(strength=strength))
    lightness = textured_l(48, 64)
    expected = None
    for t in range(40):  # the start's transient decays as s**t
        predicted = np.zeros((48, 64, 2), np.float32)
        predicted[..., 0] = 10.0 if t % 2 == 0 else -10.0
        result = stabilizer(lightness, [predicted])
        expected = predicted if expected is None else strength * expected + (1 - strength) * predicted
        np.testing.assert_allclose(result.ab[0], expected, atol=1e-3)
        assert not result.cut
    steady = (1 - strength) / (1 + strength) * 10.0
    assert abs(abs(float(result.ab[0][..., 0].mean())) - steady) < 0.05


def test_moving_scene_carries_colour_along_the_motion() -> None:
    """A textured scene panned 2 px right and 1 px down per frame, whose true ab moves with it,
    predicted with independent noise per frame: the stabilised ab is nearer the truth (the
    noise averages along the motion), and the flicker between frames drops."""
    height, width, frames = 64, 96, 16
    scene_l = textured_l(height + 2 * frames, width + 2 * frames, seed=1)
    scene_ab = np.stack([textured_l(height + 2 * frames, width + 2 * frames, seed=s) - 50 for s in (2, 3)], axis=-1)
    rng = np.random.default_rng(4)
    stabilizer = TemporalStabilizer()
    per_frame_error, stabilised_error = [], []
    for t in range(frames):
        window = np.s_[t : t + height, 2 * t : 2 * t + width]
        truth = scene_ab[window]
        predicted = truth + rng.normal(0, 8, truth.shape).astype(np.float32)
        result = stabilizer(np.ascontiguousarray(scene_l[window]), [predicted])
        if t >= 8:  # past the warm-up; interior only (the border enters the frame anew)
            inner = np.s_[8:-8, 8:-8]
            per_frame_error.append(np.abs(predicted - truth)[inner].mean())
            stabilised_error.append(np.abs(result.ab[0] - truth)[inner].mean())
    assert stabilizer.cuts == []
    # white noise through s = 0.85 recursion keeps sqrt((1 - s) / (1 + s)) = 0.28 of its size
    assert np.mean(stabilised_error) < 0.5 * np.mean(per_frame_error)


def test_a_scene_cut_resets_to_the_prediction() -> None:
    stabilizer = TemporalStabilizer()
    first, second = textured_l(48, 64, seed=5), textured_l(48, 64, seed=6)
    colours = [np.full((48, 64, 2), value, np.float32) for value in (30.0, -30.0)]
    for t in range(6):
        stabilizer(first, [colours[0]])
    result = stabilizer(second, [colours[1]])
    assert result.cut and stabilizer.cuts == [6]
    np.testing.assert_array_equal(result.ab[0], colours[1])
    assert not stabilizer(second, [colours[1]]).cut


def test_scene_cuts_of_a_real_clip_are_found_where_a_person_sees_them(shared_data: Path) -> None:
    stabilizer = TemporalStabilizer()
    with VideoReader(shared_data / "video" / "bikes.mp4") as reader:
        for decoded in reader:
            small = F.interpolate(torch.from_numpy(decoded.rgb).permute(2, 0, 1)[None].float(), size=(128, 301),
                                  mode="bilinear", antialias=True)[0].round().clamp(0, 255).byte()  # fmt: skip
            lightness = to_gray_u8(small.permute(1, 2, 0).numpy()).astype(np.float32) / 2.55
            stabilizer(lightness, [np.zeros((*lightness.shape, 2), np.float32)])
    assert stabilizer.frame_index == 250
    assert stabilizer.cuts == BIKES_CUTS


def test_the_smallest_frame_optical_flow_takes_is_measured() -> None:
    """DIS itself refuses a frame whose shorter side is below 12 px (every preset)."""
    import cv2

    for preset in (cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, cv2.DISOPTICAL_FLOW_PRESET_FAST, cv2.DISOPTICAL_FLOW_PRESET_MEDIUM):
        dis = cv2.DISOpticalFlow_create(preset)
        small = np.zeros((MIN_FLOW_SIDE - 1, MIN_FLOW_SIDE - 1), np.uint8)
        with pytest.raises(cv2.error, match="width or height >= 12"):
            dis.calc(small, small, None)
        smallest = np.zeros((MIN_FLOW_SIDE, MIN_FLOW_SIDE), np.uint8)
        assert dis.calc(smallest, smallest, None).shape == (12, 12, 2)


# Short, wide frames on which DIS itself crashes the process (a segmentation fault in
# opencv-python 5.1: measured in a child process per shape), and a tall one it takes.
SHORT_AND_WIDE = [(12, 40), (16, 100), (31, 300), (300, 11)]


@pytest.mark.parametrize("shape", SHORT_AND_WIDE)
def test_flow_of_short_wide_frames_is_estimated_enlarged_without_crashing(shape) -> None:
    """A texture moved 2 px right: the flow says +2 px in x, 0 in y, at the frame's own size
    (before: the process died on the first three shapes)."""
    height, width = shape
    if min(shape) < MIN_FLOW_SIDE:
        with pytest.raises(ValueError, match="too small for optical flow"):
            FlowEstimator("fast")(np.zeros(shape, np.uint8), np.zeros(shape, np.uint8))
        return
    texture = (textured_l(height, width + 2, seed=7) * 2.55).astype(np.uint8)
    frame_a, frame_b = np.ascontiguousarray(texture[:, 2:]), np.ascontiguousarray(texture[:, :-2])
    for preset in ("ultrafast", "fast", "medium"):
        flow = FlowEstimator(preset)(frame_a, frame_b)
        assert flow.shape == (height, width, 2)
        inner = flow[2:-2, 4:-4]
        assert abs(np.median(inner[..., 0]) - 2.0) < 0.5 and abs(np.median(inner[..., 1])) < 0.5


@pytest.mark.parametrize("shape", [(1, 1), (2, 1000), (MIN_FLOW_SIDE - 1, 40)])
def test_frames_too_small_for_flow_are_stabilised_without_motion(shape) -> None:
    """Before: cv2.error from DIS. Now a still scene follows the recursion as with flow."""
    stabilizer = TemporalStabilizer(StabilizerSettings(strength=0.5))
    lightness = np.full(shape, 50.0, np.float32)
    expected = None
    for t in range(4):
        predicted = np.full((*shape, 2), 10.0 if t % 2 == 0 else -10.0, np.float32)
        result = stabilizer(lightness, [predicted])
        expected = predicted if expected is None else 0.5 * expected + 0.5 * predicted
        np.testing.assert_allclose(result.ab[0], expected, atol=1e-4)
    assert stabilizer.without_flow and stabilizer.cuts == []
    big = TemporalStabilizer()
    for _ in range(2):
        big(np.full((MIN_FLOW_SIDE, 40), 50.0, np.float32), [np.zeros((MIN_FLOW_SIDE, 40, 2), np.float32)])
    assert not big.without_flow


@pytest.mark.parametrize(
    "settings",
    [dict(strength=1.0), dict(strength=-0.1), dict(flow_size=8), dict(l_sigma=0.0), dict(cut_fraction=1.5)],
)
def test_stabiliser_settings_out_of_range_are_refused(settings) -> None:
    with pytest.raises(ConfigError, match="stabiliser"):
        StabilizerSettings(**settings)


def test_stabilizer_size_keeps_the_network_resolution_and_never_exceeds_the_frame() -> None:
    assert stabilizer_size(1080, 1920, 128, 64) == (128, 228)
    assert stabilizer_size(1080, 1920, 128, 256) == (256, 455)
    assert stabilizer_size(144, 176, 128, 64) == (128, 156)
    assert stabilizer_size(100, 50, 128, 64) == (100, 50)


# --- frames, as photos are colorized --------------------------------------------------------


@pytest.fixture(scope="module")
def colorizer() -> Colorizer:
    return Colorizer.pretrained()


def clip_frames(path: Path, count: int) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [decoded.rgb for _, decoded in zip(range(count), reader)]


def test_per_frame_video_equals_colorizing_each_frame_as_a_photo(colorizer, shared_data: Path) -> None:
    frames = clip_frames(shared_data / "video" / "carphone_pristine.mp4", 10)
    colored = list(colorizer.colorize_frames(frames, temperature=0.8, temporal_consistency=False, batch_frames=4))
    assert len(colored) == 10
    for frame, out in zip(frames, colored):
        np.testing.assert_array_equal(out, colorizer.colorize(frame, temperature=0.8))


def test_stabilised_frames_keep_each_frame_own_lightness(colorizer, shared_data: Path) -> None:
    """Only ab is stabilised: the output's L* is the input frame's (up to 8-bit rounding and
    the sRGB gamut clipping of saturated colours)."""
    frames = clip_frames(shared_data / "video" / "test.mp4", 12)
    colored = list(colorizer.colorize_frames(frames))
    for frame, out in zip(frames, colored):
        difference = np.abs(to_gray_u8(out).astype(int) - to_gray_u8(frame).astype(int))
        assert np.median(difference) <= 1 and np.mean(difference <= 3) > 0.97
        assert np.abs(out.astype(int) - out.mean(axis=2, keepdims=True)).mean() > 2  # in colour, not gray


def test_frames_are_colorized_lazily_as_a_stream(colorizer) -> None:
    """An endless source: each output comes after at most one batch of input."""
    pulled = []

    def endless():
        rng = np.random.default_rng(0)
        while True:
            pulled.append(1)
            yield rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)

    stream = colorizer.colorize_frames(endless(), batch_frames=3)
    first = [next(stream) for _ in range(4)]
    assert len(first) == 4 and first[0].shape == (40, 56, 3) and len(pulled) == 6


@pytest.mark.parametrize("batch_frames", [1, 2])
def test_frames_of_another_size_in_one_video_are_refused(colorizer, batch_frames: int) -> None:
    """Within a batch or across batches alike."""
    frames = [np.zeros((40, 56, 3), np.uint8), np.zeros((40, 58, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"frame 1 is uint8 \(40, 58, 3\); .* like the first"):
        list(colorizer.colorize_frames(frames, batch_frames=batch_frames))


def test_a_video_whose_size_changes_midway_fails_with_one_line(colorizer, tmp_path: Path) -> None:
    """A real file whose stream switches resolution (MJPEG frames of two sizes in Matroska):
    a VideoReadError naming it, and no output."""
    source = tmp_path / "switch.mkv"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        smaller = av.CodecContext.create("mjpeg", "w")  # JPEG packets of another size, same stream
        smaller.width, smaller.height, smaller.pix_fmt, smaller.time_base = 48, 32, "yuvj420p", Fraction(1, 10)
        for index in range(6):
            encoder, size = (stream, (48, 64)) if index < 3 else (smaller, (32, 48))
            frame = av.VideoFrame.from_ndarray(np.full((*size, 3), 40 * index, np.uint8), format="rgb24")
            frame = frame.reformat(format="yuvj420p")
            frame.pts, frame.time_base = index, Fraction(1, 10)
            for packet in encoder.encode(frame):
                packet.stream, packet.pts, packet.dts, packet.time_base = stream, index, index, Fraction(1, 10)
                container.mux(packet)
    assert [decoded.rgb.shape[:2] for decoded in VideoReader(source)] == [(48, 64)] * 3 + [(32, 48)] * 3
    with pytest.raises(VideoReadError, match=r"its frame size changes \(frame 3 is uint8 \(32, 48, 3\)"):
        colorizer.colorize_video(source, tmp_path / "out.mp4", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["switch.mkv"]


@pytest.mark.parametrize(("width", "height"), [(1, 1), (1000, 2), (8, 8)])
def test_tiny_videos_are_colorized_through_both_apis_and_say_so(colorizer, tmp_path: Path, width: int, height: int) -> None:
    """Before: a cv2.error traceback from the stabiliser's flow, through colorize_video and
    colorize_frames alike."""
    source = make_video(tmp_path / "tiny.mkv", frames=4, width=width, height=height)
    with pytest.warns(UserWarning, match=f"frames of {width}x{height} are below the 12 px optical flow needs"):
        report = colorizer.colorize_video(source, tmp_path / "out.mp4", progress=False)
    assert report.frames == 4 and report.without_flow
    assert report.notes() == ["its frames are below the 12 px optical flow needs: stabilised without motion"]
    out = probe_video(tmp_path / "out.mp4")
    assert (out.width, out.height) == (width + width % 2, height + height % 2)  # odd sizes padded
    frames = [np.full((height, width, 3), 90, np.uint8)] * 3
    with pytest.warns(UserWarning, match="optical flow needs"):
        colored = list(colorizer.colorize_frames(frames))
    assert [one.shape for one in colored] == [(height, width, 3)] * 3


def test_progress_lines_say_frames_rate_and_eta(capsys) -> None:
    from lit_colorize.video.colorize import VideoProgress

    progress = VideoProgress("film.mp4", total=10, lines_only=True, every_seconds=0.0)
    for _ in range(4):
        progress.advance()
    progress.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and lines[-1].startswith("film.mp4: 4/10 frames, ")
    assert " frames/s, ETA " in lines[-1] and lines[-1].endswith(" s")
    VideoProgress("film.mp4", total=None, enabled=False).advance()
    assert capsys.readouterr().err == ""


# --- files ----------------------------------------------------------------------------------


def frame_times(path: Path) -> list[float]:
    with VideoReader(path) as reader:
        return [decoded.time for decoded in reader]


def audio_payload(path: Path) -> bytes:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return b"".join(bytes(packet) for packet in container.demux(stream) if packet.size)


@pytest.mark.slow
def test_colorize_video_keeps_size_frames_times_and_sound(colorizer, shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "video" / "flipping_a_pancake.mkv"
    target = tmp_path / "pancake_colorized.mp4"
    report = colorizer.colorize_video(source, target, progress=False)
    info, out = probe_video(source), probe_video(target)
    assert (out.width, out.height) == (info.width, info.height) and out.codec == "h264"
    assert report.frames == 310 and report.bad_packets == 0
    times = frame_times(target)
    assert len(times) == 310
    np.testing.assert_allclose(times, frame_times(source), atol=0.0011)  # Matroska's source: millisecond ticks
    assert out.has_audio and audio_payload(target) == audio_payload(source)  # Opus copied, not re-encoded
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    with pytest.raises(VideoWriteError, match="exists; pass overwrite=True"):
        colorizer.colorize_video(source, target, progress=False)


def test_an_old_avi_with_b_frames_is_colorized_at_its_own_frame_times(colorizer, tmp_path: Path) -> None:
    """Issue 31: MPEG-4 Part 2 in AVI with B-frames came out one frame (40 ms) late, in time
    base 1/12800 instead of the source's 1/25. Read back here by PyAV alone."""
    source = b_frame_avi(tmp_path / "old.avi", "mpeg4")
    target = tmp_path / "old_color.mp4"
    report = colorizer.colorize_video(source, target, progress=False)
    assert report.frames == 12
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert Fraction(stream.time_base) == Fraction(1, 25)
        times = sorted(Fraction(frame.pts) * Fraction(stream.time_base) for frame in container.decode(stream))
    assert times == [Fraction(index, 25) for index in range(12)]


@pytest.mark.slow
def test_variable_frame_timing_is_kept(colorizer, shared_data: Path, tmp_path: Path) -> None:
    """demo_skeleton.mp4 (full HD) has a 0.2 s gap in its frame times."""
    source = shared_data / "video" / "demo_skeleton.mp4"
    times = frame_times(source)
    gaps = np.diff(times)
    assert gaps.max() > 2.5 * np.median(gaps)  # the clip really has one
    target = tmp_path / "skeleton.mp4"
    colorizer.colorize_video(source, target, progress=False)
    np.testing.assert_allclose(frame_times(target), times, atol=1e-6)


def test_a_corrupt_video_fails_alone_and_leaves_no_output(colorizer, tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoReadError, match="broken.mp4"):
        colorizer.colorize_video(bad, tmp_path / "out.mp4", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]


def test_an_error_mid_video_leaves_no_output_under_its_name(colorizer, shared_data: Path, tmp_path: Path) -> None:
    """An exception after some frames were encoded (here: from the progress callback, as a
    Ctrl-C would come): every output's temporary file is removed, none has a final name."""
    source = shared_data / "video" / "carphone_pristine.mp4"

    def stop(frames_done: int) -> None:
        if frames_done == 20:
            raise KeyboardInterrupt

    outputs = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    with pytest.raises(KeyboardInterrupt):
        colorize_video(colorizer.module.net, source, outputs, [0.0, 1.0], progress=False, on_frame=stop)
    assert list(tmp_path.iterdir()) == []


# --- lit-colorize predict --------------------------------------------------------------------


@pytest.mark.slow
def test_predict_colorizes_videos_beside_photos_and_keeps_what_exists(shared_data: Path, tmp_path: Path, capsys) -> None:
    """A video and a photo in one run; an unreadable video fails alone; the rerun keeps the
    video that exists, quietly (--skip_existing) or with a line naming it (default)."""
    from lit_colorize.pretrained import pretrained_checkpoint

    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "clip.mp4").symlink_to(shared_data / "video" / "carphone_pristine.mp4")
    (inputs / "photo.jpg").symlink_to(next((shared_data / "photos" / "bsds500" / "test").glob("*.jpg")))
    (inputs / "broken.mkv").write_bytes(b"\x1a\x45\xdf\xa3 not really matroska")
    out = tmp_path / "out"
    args = predict_args(pretrained_checkpoint(), [inputs], out, "--writer.temperatures", "[0, 1]")
    status = run_in_process(args)
    printed = capsys.readouterr().out
    assert status == 1  # broken.mkv
    assert "wrote 2 images and 2 videos" in printed and "1 failed" in printed
    assert f"FAILED {inputs / 'broken.mkv'}: " in printed
    assert files_under(out) == {"clip_colorized_T0.mp4", "clip_colorized_T1.mp4", "photo_colorized_T0.png", "photo_colorized_T1.png"}
    assert probe_video(out / "clip_colorized_T1.mp4").frame_count == 120
    first_t0, first_t1 = (next(iter(VideoReader(out / f"clip_colorized_T{t}.mp4"))).rgb for t in (0, 1))
    assert np.abs(first_t0.astype(int) - first_t1.astype(int)).mean() > 0.5  # two temperatures, two videos
    before = (out / "clip_colorized_T0.mp4").stat().st_mtime_ns

    (inputs / "broken.mkv").unlink()
    assert run_in_process([*args, "--skip_existing", "true"]) == 0
    assert "kept 4 that existed" in capsys.readouterr().out
    assert run_in_process(args) == 0
    assert "clip_colorized_T0.mp4 exists, skipped (pass --skip_existing" in capsys.readouterr().out
    assert (out / "clip_colorized_T0.mp4").stat().st_mtime_ns == before


@pytest.mark.slow
def test_predict_goes_on_past_a_tiny_video_and_names_what_it_changed(tmp_path: Path, capsys) -> None:
    """A 2x1000 video (too small for optical flow), a rotated phone clip, then a photo. Before:
    the tiny video ended the run with a cv2.error traceback and the photo was never written."""
    from lit_colorize.pretrained import pretrained_checkpoint

    inputs = tmp_path / "in"
    inputs.mkdir()
    make_video(inputs / "a_strip.mkv", frames=3, width=1000, height=2)
    make_video(inputs / "b_phone.mp4", frames=3, codec="libx264", rotation=-90)
    make_photos(inputs, ["c_after.png"])
    out = tmp_path / "out"
    status = run_in_process(predict_args(pretrained_checkpoint(), [inputs], out))
    printed = capsys.readouterr().out
    assert status == 0, printed[-3000:]
    # the shipped model's own decoding (annealed mean T=0.38) names the outputs
    assert files_under(out) == {"a_strip_colorized_T0.38.mp4", "b_phone_colorized_T0.38.mp4", "c_after_colorized_T0.38.png"}
    assert f"{inputs / 'a_strip.mkv'}: its frames are below the 12 px optical flow needs" in printed
    assert f"{inputs / 'b_phone.mp4'}: its rotation metadata was applied: turned 90 degrees clockwise" in printed
    phone = probe_video(out / "b_phone_colorized_T0.38.mp4")
    assert (phone.width, phone.height) == (24, 32)


@pytest.mark.slow
def test_readme_video_command_runs_with_sound(shared_data: Path, tmp_path: Path) -> None:
    """The README's command for a newcomer, as a user runs it (shipped model, no --ckpt_path)."""
    from tests.helpers import cli_env, console_script

    clip = shared_data / "video" / "flipping_a_pancake.mkv"
    result = subprocess.run(
        [console_script(), "predict", "--config", str(REPO_ROOT / "configs" / "predict.yaml"),
         "--data.inputs", f"[{clip}]", "--writer.output_dir", str(tmp_path / "colorized")],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    output = tmp_path / "colorized" / "flipping_a_pancake_colorized_T0.38.mp4"  # the shipped model's own decoding
    info = probe_video(output)
    assert info.has_audio and info.frame_count == 310 and (info.width, info.height) == (426, 240)
    assert "wrote 1 videos" in result.stdout


# --- issue 30: one global hint (a reference photo or a palette) for a whole clip ---------------


@pytest.fixture(scope="module")
def global_colorizer() -> Colorizer:
    """The page tests' global-hints model: random weights, the hint weighing heavily (the wiring, not the quality)."""
    from tests.test_app import random_colorizer

    return random_colorizer(200, global_hints=True)


def test_one_global_hint_colors_every_frame_as_the_colorizer_colors_each_photo(global_colorizer: Colorizer, tmp_path: Path, monkeypatch) -> None:
    """Stabiliser off: every frame equals ``Colorizer.colorize(frame, reference=...)`` (or the
    palette's), through colorize_frames and through colorize_video's frames as they are encoded;
    the hint changes the frames."""
    from lit_colorize.video import colorize as video_colorize

    source = make_video(tmp_path / "clip.mkv", frames=6, width=64, height=48)
    frames = clip_frames(source, 6)
    reference = np.random.default_rng(8).integers(0, 256, (30, 70, 3), dtype=np.uint8)
    palettes = {"reference": {"reference": reference}, "palette": {"palette": ["#2a6fdb", "#c8a27a"], "weights": [3, 1]}}
    plain = [global_colorizer.colorize(frame) for frame in frames]
    for given in palettes.values():
        colored = list(global_colorizer.colorize_frames(frames, temporal_consistency=False, batch_frames=4, **given))
        expected = [global_colorizer.colorize(frame, **given) for frame in frames]
        assert len(colored) == 6 and all(np.array_equal(out, one) for out, one in zip(colored, expected))
        assert np.mean([np.mean(out != one) for out, one in zip(colored, plain)]) > 0.02  # the hint is used
    written: list[np.ndarray] = []
    real_write = video_colorize.VideoWriter.write
    monkeypatch.setattr(video_colorize.VideoWriter, "write", lambda self, image, pts: (written.append(image.copy()), real_write(self, image, pts))[1])
    report = global_colorizer.colorize_video(source, tmp_path / "out.mp4", temporal_consistency=False, progress=False, reference=reference)
    assert report.frames == 6 and len(written) == 6
    for out, frame in zip(written, frames):
        np.testing.assert_array_equal(out, global_colorizer.colorize(frame, reference=reference))


def test_a_model_without_global_hints_refuses_a_reference_before_decoding(colorizer: Colorizer, tmp_path: Path) -> None:
    """One line, before the video is opened (a missing file shows it: the hint is refused first)
    and before colorize_frames takes a frame; no output is left."""
    from lit_colorize.global_hints import GlobalHintError, global_hint_vector

    source = make_video(tmp_path / "clip.mkv", frames=3)
    for missing in (False, True):
        src = tmp_path / "missing.mp4" if missing else source
        with pytest.raises(GlobalHintError, match=r"trained without global hints \(global_hints: false\)") as caught:
            colorizer.colorize_video(src, tmp_path / "out.mp4", progress=False, reference=np.zeros((8, 8, 3), np.uint8))
        assert "\n" not in str(caught.value)
    pulled: list[int] = []

    def frames():
        pulled.append(1)
        yield np.zeros((24, 32, 3), np.uint8)

    with pytest.raises(GlobalHintError, match="trained without global hints"):
        colorizer.colorize_frames(frames(), palette=["#2a6fdb"])
    assert pulled == []
    vector = global_hint_vector(None, colorizer.module.hparams.grid_size)
    with pytest.raises(ValueError, match="trained without global hints"):  # the module-level API, given a vector
        colorize_video(colorizer.module.net, tmp_path / "missing.mp4", [tmp_path / "out.mp4"], progress=False, global_hint=vector)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv"]


# --- issue 30: local hints on keyframes, carried through their shot ----------------------------


def panning_shots(lengths: tuple[int, ...] = (8, 6), height: int = 64, width: int = 96, step: int = 2) -> list[np.ndarray]:
    """L* frames of shots of their own texture, each panned so its content moves ``step`` px
    right per frame: a point at x on a shot's frame t is at x + step on frame t + 1."""
    frames = []
    for shot, length in enumerate(lengths):
        scene = textured_l(height, width + step * length, seed=20 + shot)
        frames += [np.ascontiguousarray(scene[:, step * (length - t) : step * (length - t) + width]) for t in range(length)]
    return frames


def test_keyframe_hints_follow_a_pan_forward_and_backward_and_stop_at_a_cut() -> None:
    """Oracle: the pan itself (2 px right per frame). A hint on frame 3 is on frames 0-7 at
    x + 2 (t - 3), none after the cut at 8; one on frame 10 reaches back to 8 and no further;
    one near the right edge leaves the frame on frame 6 and is not carried further."""
    from lit_colorize.video.keyframes import HintCarrier, parse_keyframe_hints

    frames = panning_shots()
    given = [{"frame": 3, "x": 40, "y": 30, "color": "#c03030"}, {"frame": 10, "x": 20, "y": 20, "color": "#2a6fdb"},
             {"frame": 3, "x": 90, "y": 50, "color": "#3c9a3c", "size": 5}]  # fmt: skip
    carrier = HintCarrier(parse_keyframe_hints(given, "pan", 64, 96), (64, 96))
    for frame in frames:
        carrier(frame)
    assert carrier.cuts == [8]
    for t in range(14):
        found = {hint.rgb: hint for hint in carrier.by_frame.get(t, [])}
        expected = {}
        if t < 8:
            expected[(0xC0, 0x30, 0x30)] = (40 + 2 * (t - 3), 30)
            if t < 6:
                expected[(0x3C, 0x9A, 0x3C)] = (90 + 2 * (t - 3), 50)
        else:
            expected[(0x2A, 0x6F, 0xDB)] = (20 + 2 * (t - 10), 20)
        assert set(found) == set(expected), t
        for rgb, (x, y) in expected.items():
            assert abs(found[rgb].x - x) < 0.5 and abs(found[rgb].y - y) < 0.5, (t, found[rgb], x, y)
    assert [h.size for h in carrier.by_frame[5]] == [None, 5.0]  # each hint's patch side is kept


def write_clip(path: Path, frames: list[np.ndarray]) -> Path:
    """uint8 RGB frames as an MJPEG clip at 10 fps (high quality, so the texture survives)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=10, options={"q:v": "2"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuvj444p"
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def hint_colorizer() -> Colorizer:
    """The page tests' model that takes hints, random weights: the wiring, not the quality."""
    from tests.test_app import random_colorizer

    return random_colorizer(hints=True)


def test_a_video_takes_keyframe_hints_on_every_frame_of_their_shot(hint_colorizer: Colorizer, tmp_path: Path, monkeypatch) -> None:
    """A real clip of two panning shots: the hint given on frame 3 is on frames 0-7 where the pan
    puts it (within a pixel), and each written frame (stabiliser off) is the Colorizer's with that
    frame's carried hints; frames of the other shot get none."""
    from lit_colorize.video import colorize as video_colorize

    gray = [np.clip(frame * 2.55, 0, 255).astype(np.uint8) for frame in panning_shots(height=96, width=128)]
    source = write_clip(tmp_path / "pan.mkv", [np.repeat(one[..., None], 3, axis=2) for one in gray])
    frames = clip_frames(source, 14)
    given = [{"frame": 3, "x": 60, "y": 40, "color": "#c03030", "size": 9}]
    written: list[np.ndarray] = []
    real_write = video_colorize.VideoWriter.write
    monkeypatch.setattr(video_colorize.VideoWriter, "write", lambda self, image, pts: (written.append(image.copy()), real_write(self, image, pts))[1])
    report = hint_colorizer.colorize_video(source, tmp_path / "out.mp4", temporal_consistency=False, progress=False, hints=given)
    assert report.frames == 14 and len(written) == 14
    carried = video_colorize.carried_hints(video_colorize.FrameColorizer(hint_colorizer.module.net), source, given)
    assert sorted(carried) == list(range(8))
    for t in range(14):
        if t < 8:
            (hint,) = carried[t]
            assert abs(hint.x - (60 + 2 * (t - 3))) < 1 and abs(hint.y - 40) < 1, (t, hint)
            as_photo = [{"x": hint.x, "y": hint.y, "color": "#c03030", "size": 9}]
            np.testing.assert_array_equal(written[t], hint_colorizer.colorize(frames[t], hints=as_photo))
            assert not np.array_equal(written[t], hint_colorizer.colorize(frames[t]))  # the hint is used
        else:
            np.testing.assert_array_equal(written[t], hint_colorizer.colorize(frames[t]))


def test_keyframe_hints_are_checked_in_one_line_before_anything_is_written(colorizer: Colorizer, hint_colorizer: Colorizer, tmp_path: Path) -> None:
    from lit_colorize.user_hints import HintError

    source = make_video(tmp_path / "clip.mkv", frames=6)
    hint = {"x": 3, "y": 3, "color": "#c03030"}
    cases = [
        (colorizer, tmp_path / "missing.mp4", [{"frame": 0, **hint}], "keyframe hints were given, but this model was trained without hints"),
        (hint_colorizer, source, [{"frame": 50, **hint}], "a keyframe hint is on frame 50, but the video has 6 frames (0 to 5)"),
        (hint_colorizer, source, [hint], "keyframe hint 1 ({'x': 3, 'y': 3, 'color': '#c03030'}) needs a frame: a whole number from 0"),
        (hint_colorizer, source, [{"frame": 1, "x": 99, "y": 3, "color": "#c03030"}], "keyframe hint 1 (frame 1): hint 1"),
    ]  # fmt: skip
    for model, src, hints, message in cases:
        with pytest.raises(HintError) as caught:
            model.colorize_video(src, tmp_path / "out.mp4", progress=False, hints=hints)
        assert message in str(caught.value) and "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv"]
