"""Two runs writing one output name at the same time, as real processes (issue 26, case 1).

Each race is made deterministic: the run that started first is held after it has checked that
its output does not exist and before it publishes (paused on stdin by a patched encoder, or
stopped with SIGSTOP once its temporary file is there) while the other run completes. Before
the fix the held run's final rename replaced the other's file, and both exited 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av", reason="video needs the video extra: pip install -e '.[video]'")

from lit_colorize.atomic import is_partial  # noqa: E402
from lit_colorize.video.io import VideoReader, probe_video  # noqa: E402
from tests.conftest import REPO_ROOT  # noqa: E402
from tests.helpers import cli_env, console_script  # noqa: E402
from tests.test_predict_faults import make_photos, predict_args  # noqa: E402
from tests.test_video_io import make_video  # noqa: E402

# The real VideoWriter without the package's __init__ (torch): frames of one gray level, then
# it waits for a line on stdin before it finishes and publishes.
PAUSED_VIDEO_WRITER = """
import sys, types
from pathlib import Path
package = types.ModuleType("lit_colorize"); package.__path__ = [str(Path(sys.argv[1]) / "lit_colorize")]
sys.modules["lit_colorize"] = package
import numpy as np
from lit_colorize.video.io import VideoExistsError, VideoWriter, probe_video
info = probe_video(sys.argv[2])
try:
    with VideoWriter(Path(sys.argv[3]), info, preset="ultrafast", overwrite=False) as writer:
        for index in range(int(sys.argv[5])):
            writer.write(np.full((info.height, info.width, 3), int(sys.argv[4]), np.uint8), index)
        print("encoded", flush=True)
        sys.stdin.readline()
except VideoExistsError as error:
    print("EXISTS", error, flush=True)
    sys.exit(3)
"""


def start_video_writer(source: Path, target: Path, gray: int, frames: int) -> subprocess.Popen:
    writer = subprocess.Popen(
        [sys.executable, "-c", PAUSED_VIDEO_WRITER, str(REPO_ROOT), str(source), str(target), str(gray), str(frames)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert writer.stdout.readline() == "encoded\n", writer.communicate()
    return writer


def first_gray(path: Path) -> float:
    with VideoReader(path) as reader:
        return float(next(iter(reader)).rgb.mean())


def test_two_video_writers_of_one_name_the_later_fails_and_the_first_file_stays(tmp_path: Path) -> None:
    source = make_video(tmp_path / "src.mkv")
    target = tmp_path / "out" / "clip_colorized_T0.8.mp4"
    target.parent.mkdir()
    slow = start_video_writer(source, target, gray=40, frames=30)  # run A, started first
    fast = start_video_writer(source, target, gray=200, frames=5)  # run B
    fast.communicate("go\n", timeout=60)
    assert fast.returncode == 0 and abs(first_gray(target) - 200) < 4
    out, _ = slow.communicate("go\n", timeout=60)
    assert slow.returncode == 3 and f"EXISTS {target} exists" in out
    assert abs(first_gray(target) - 200) < 4 and probe_video(target).frame_count == 5  # B's, untouched
    assert os.listdir(target.parent) == [target.name]  # A's temporary file removed


def run_predict(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([console_script(), *args], cwd=cwd, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


@pytest.mark.slow
def test_two_predict_runs_writing_one_video_name(tmp_path: Path) -> None:
    """Run A (a/clip.mkv, 80 frames) and run B (b/clip.mkv, 5 frames) into one folder. A is
    stopped (SIGSTOP) as soon as its temporary file exists, i.e. after its existence check;
    B runs to the end; then A goes on. Before: both said "wrote 1 videos" and exited 0, and
    A's file replaced B's."""
    from lit_colorize.pretrained import pretrained_checkpoint

    for name, frames in (("a", 80), ("b", 5)):
        (tmp_path / name).mkdir()
        make_video(tmp_path / name / "clip.mkv", frames=frames, width=64, height=48)
    out = tmp_path / "out"
    final = out / "clip_colorized_T0.38.mp4"  # the shipped model's own decoding, annealed mean T=0.38
    args = {name: predict_args(pretrained_checkpoint(), [tmp_path / name / "clip.mkv"], out) for name in "ab"}
    run_a = run_predict(args["a"], tmp_path)
    try:
        deadline = time.monotonic() + 300
        while not (out.is_dir() and any(is_partial(p.name) for p in out.iterdir())):
            assert run_a.poll() is None and time.monotonic() < deadline, run_a.communicate()
            time.sleep(0.005)
        os.kill(run_a.pid, signal.SIGSTOP)
        assert not final.exists(), "run A finished its 80 frames before it could be stopped"
        run_b = run_predict(args["b"], tmp_path)
        b_out, b_err = run_b.communicate(timeout=300)
        assert run_b.returncode == 0, b_out[-2000:] + b_err[-2000:]
        assert "wrote 1 videos" in b_out and probe_video(final).frame_count == 5
        written_by_b = final.stat()
    finally:
        os.kill(run_a.pid, signal.SIGCONT)
    a_out, a_err = run_a.communicate(timeout=300)
    assert run_a.returncode == 1, a_out[-2000:] + a_err[-2000:]
    assert f"FAILED {tmp_path / 'a' / 'clip.mkv'}: {final} exists: another run wrote it while this one encoded" in a_out
    assert "1 failed" in a_out and "wrote 0 images" in a_out
    kept = final.stat()
    assert (kept.st_ino, kept.st_mtime_ns) == (written_by_b.st_ino, written_by_b.st_mtime_ns)
    assert probe_video(final).frame_count == 5
    assert os.listdir(out) == [final.name]


# predict whose first photo save pauses, after encoding into its temporary file and before
# publishing it, until a line comes on stdin.
PAUSE_AFTER_ENCODING = textwrap.dedent(
    """
    import sys
    from PIL import Image
    save = Image.Image.save

    def save_then_wait(self, fp, *args, **kwargs):
        save(self, fp, *args, **kwargs)
        print("encoded", flush=True)
        sys.stdin.readline()

    Image.Image.save = save_then_wait
    from lit_colorize.cli import main
    main(sys.argv[1:])
    """
)


@pytest.mark.slow
def test_two_predict_runs_writing_one_photo_name(tmp_path: Path) -> None:
    """The same race for a photo: A holds its encoded photo unpublished while B writes the
    same name; A's publish then fails with "exists" and B's photo stays."""
    from lit_colorize.pretrained import pretrained_checkpoint

    for name, size in (("a", (40, 56)), ("b", (24, 32))):
        make_photos(tmp_path / name, ["photo.png"], size=size)
    out = tmp_path / "out"
    final = out / "photo_colorized_T0.38.png"  # the shipped model's own decoding, annealed mean T=0.38
    args = {name: predict_args(pretrained_checkpoint(), [tmp_path / name / "photo.png"], out) for name in "ab"}
    run_a = subprocess.Popen([sys.executable, "-c", PAUSE_AFTER_ENCODING, *args["a"]], cwd=tmp_path, env=cli_env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = run_a.stdout.readline()
        assert line == "encoded\n", line + run_a.stderr.read()[-3000:]
        assert not final.exists()
        run_b = run_predict(args["b"], tmp_path)
        b_out, b_err = run_b.communicate(timeout=300)
        assert run_b.returncode == 0 and "wrote 1 images" in b_out, b_out[-2000:] + b_err[-2000:]
    finally:
        a_out, a_err = run_a.communicate("go\n", timeout=300)
    assert run_a.returncode == 1, a_out[-2000:] + a_err[-2000:]
    assert f"FAILED {tmp_path / 'a' / 'photo.png'}: {final} exists (another run wrote it meanwhile)" in a_out
    from PIL import Image

    assert Image.open(final).size == (32, 24)  # B's photo
    assert os.listdir(out) == [final.name]
    assert np.asarray(Image.open(final)).std() > 0
