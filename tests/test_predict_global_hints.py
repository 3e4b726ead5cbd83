"""predict's global hints per photo (issue 30): ``photo.reference.json`` beside a photo (a
reference or a palette) wins over ``--data.reference`` / ``--data.palette``; a bad one fails its
photo alone in one line naming the file; videos take the run's or their own global hint and
keyframe hints from ``clip.hints.json``. Oracle: the Colorizer given the same hint directly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lit_colorize import Colorizer
from lit_colorize.cli import main
from tests.helpers import fitted_module
from tests.test_predict_faults import files_under, make_photos, predict_args, run_in_process

PALETTE = ["#2a6fdb", "#c8a27a"]


def scaled_global_checkpoint(root: Path) -> Path:
    """Briefly trained with local and global hints; the global hint's MLP scaled up, so a hint
    visibly changes the output (the wiring is under test, not the quality). tests/test_hints_benchmark.py uses it too."""
    torch.manual_seed(0)
    module, _, trainer = fitted_module(root, widths=(8, 16, 32), global_hints=True, hints=True)
    with torch.no_grad():
        module.net.global_hint.mlp[2].weight.mul_(200)
    path = root / "both.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def global_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scaled_global_checkpoint(tmp_path_factory.mktemp("global"))


def output(out: Path, photo: Path) -> np.ndarray:
    return np.asarray(Image.open(out / f"{photo.stem}_colorized_T0.8.png"))


def test_a_sidecar_wins_over_the_run_s_palette(global_checkpoint: Path, tmp_path: Path, capsys) -> None:
    """a.png's sidecar names a reference (relative to the sidecar's folder), b.png's a palette
    with weights; c.png has none and takes --data.palette. Each equals the Colorizer given that hint."""
    photos = make_photos(tmp_path / "in", ["a.png", "b.png", "c.png"])
    (tmp_path / "in" / "refs").mkdir()
    reference = tmp_path / "in" / "refs" / "paris.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(reference)
    (tmp_path / "in" / "a.reference.json").write_text(json.dumps({"reference": "refs/paris.png"}))
    (tmp_path / "in" / "b.reference.json").write_text(json.dumps({"palette": ["#d62828", "#2a9d3f"], "weights": [3, 1]}))
    out = tmp_path / "out"
    status = run_in_process(predict_args(global_checkpoint, photos, out, "--data.palette", json.dumps(PALETTE),
                                         "--data.palette_weights", "[1, 2]"))  # fmt: skip
    printed = capsys.readouterr().out
    assert status == 0 and files_under(out) == {f"{p.stem}_colorized_T0.8.png" for p in photos}
    assert f"{photos[0]}: reference {reference} from a.reference.json" in printed
    assert f"{photos[1]}: a palette of 2 colors from b.reference.json" in printed
    assert f"{photos[2]}:" not in printed  # the run's palette is not announced per photo
    colorizer = Colorizer.from_checkpoint(global_checkpoint)
    expected = [
        colorizer.colorize(str(photos[0]), reference=str(reference)),
        colorizer.colorize(str(photos[1]), palette=["#d62828", "#2a9d3f"], weights=[3, 1]),
        colorizer.colorize(str(photos[2]), palette=PALETTE, weights=[1, 2]),
    ]
    for photo, image in zip(photos, expected):
        assert np.array_equal(output(out, photo), np.asarray(image)), photo.name
    plain = np.asarray(colorizer.colorize(str(photos[2])))
    assert np.mean(output(out, photos[2]) != plain) > 0.02  # the palette is used


BAD_SIDECARS = {
    "not JSON": ("{reference: paris}", "cannot read its global hint file {sidecar}"),
    "a list": ('["#2a6fdb"]', '{sidecar} must hold {{"reference": "paris.jpg"}} or {{"palette": ["#2a6fdb"'),
    "both": ('{"reference": "r.png", "palette": ["#2a6fdb"]}', "{sidecar} must hold"),
    "an unknown key": ('{"palette": ["#2a6fdb"], "colour": 1}', "must hold"),
    "weights alone": ('{"weights": [1]}', "must hold"),
    "a missing reference": ('{"reference": "missing.png"}', "names reference {folder}/missing.png, which is not a file"),
    "a bad color": ('{"palette": ["#2a6fdg"]}', "{sidecar}: palette color 1: color '#2a6fdg' is not #rrggbb"),
    "a negative weight": ('{"palette": ["#2a6fdb"], "weights": [-1]}', "{sidecar}: palette weight 1 must be a finite number"),
    "too deep": ("[" * 20 + "]" * 20, "nests more than 8 levels deep"),
}


def test_a_bad_sidecar_fails_its_photo_alone_in_one_line(global_checkpoint: Path, tmp_path: Path, capsys) -> None:
    names = [f"p{i}.png" for i in range(len(BAD_SIDECARS))] + ["good.png"]
    photos = make_photos(tmp_path / "in", names)
    for photo, (text, _) in zip(photos, BAD_SIDECARS.values()):
        photo.with_name(photo.stem + ".reference.json").write_text(text)
    out = tmp_path / "out"
    assert run_in_process(predict_args(global_checkpoint, photos, out)) == 1
    failed = {line.split("FAILED ", 1)[1].split(": ", 1)[0]: line for line in capsys.readouterr().out.splitlines() if "FAILED" in line}
    assert files_under(out) == {"good_colorized_T0.8.png"} and len(failed) == len(BAD_SIDECARS)
    for photo, (case, (_, message)) in zip(photos, BAD_SIDECARS.items()):
        sidecar = photo.with_name(photo.stem + ".reference.json")
        assert message.format(sidecar=sidecar, folder=photo.parent) in failed[str(photo)], case


def test_a_model_without_global_hints_fails_a_photo_with_a_sidecar_naming_it(checkpoint: Path, tmp_path: Path, capsys) -> None:
    photo, other = make_photos(tmp_path / "in", ["a.png", "b.png"])
    sidecar = tmp_path / "in" / "a.reference.json"
    sidecar.write_text(json.dumps({"palette": PALETTE}))
    assert run_in_process(predict_args(checkpoint, [photo, other], tmp_path / "out")) == 1
    printed = capsys.readouterr().out
    assert (
        f"FAILED {photo}: a palette of 2 colors given, but this model was trained without global hints (global_hints: false); "
        f"use a model trained with global_hints: true, or leave out {sidecar}"
    ) in printed
    assert files_under(tmp_path / "out") == {"b_colorized_T0.8.png"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--data.palette", '["#2a6fdb"]', "--data.reference", "r.png"], "give --data.reference or --data.palette, not both"),
        (["--data.palette_weights", "[1]"], "--data.palette_weights needs --data.palette"),
        (["--data.palette", '["#2a6fdb", "blue"]'], "--data.palette: palette color 2: color 'blue' is not #rrggbb"),
        (["--data.palette", '["#2a6fdb"]', "--data.palette_weights", "[1, 2]"], "--data.palette: weights must be a list of 1 numbers"),
    ],
    ids=["both", "weights-alone", "bad-color", "weights-count"],
)
def test_the_run_s_palette_is_checked_before_any_photo(global_checkpoint: Path, tmp_path: Path, options: list[str], message: str) -> None:
    photos = make_photos(tmp_path / "in", ["a.png"])
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "r.png")
    with pytest.raises(SystemExit) as stopped:
        main(predict_args(global_checkpoint, photos, tmp_path / "out", *[o.replace("r.png", str(tmp_path / "r.png")) for o in options]))
    assert message in str(stopped.value.code) and "\n" not in str(stopped.value.code)
    assert not (tmp_path / "out").exists() or not files_under(tmp_path / "out")


def decoded_frames(path: Path) -> list[np.ndarray]:
    from lit_colorize.video.io import VideoReader

    with VideoReader(path) as reader:
        return [frame.rgb for frame in reader]


def test_videos_take_the_run_s_reference_their_own_palette_and_keyframe_hints(global_checkpoint: Path, tmp_path: Path, capsys) -> None:
    """A video with --data.reference equals Colorizer.colorize_video(reference=...); another with
    its own palette sidecar and keyframe hints in clip.hints.json equals colorize_video(palette=, hints=)."""
    pytest.importorskip("av")
    from tests.test_video_io import make_video

    folder = tmp_path / "in"
    folder.mkdir()
    plain, hinted = make_video(folder / "plain.avi", frames=4, width=48, height=32), make_video(folder / "hinted.avi", frames=4, width=48, height=32)
    reference = tmp_path / "reference.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(reference)
    keyframes = [{"frame": 1, "x": 20, "y": 10, "color": "#d62828"}, {"frame": 0, "x": 5, "y": 25, "color": "#2a9d3f"}]
    (folder / "hinted.hints.json").write_text(json.dumps(keyframes))
    (folder / "hinted.reference.json").write_text(json.dumps({"palette": PALETTE, "weights": [2, 1]}))
    out = tmp_path / "out"
    assert run_in_process(predict_args(global_checkpoint, [folder], out, "--data.reference", str(reference))) == 0
    printed = capsys.readouterr().out
    assert f"{folder / 'hinted.avi'}: 2 keyframe hints from hinted.hints.json" in printed
    assert f"{folder / 'hinted.avi'}: a palette of 2 colors from hinted.reference.json" in printed
    colorizer = Colorizer.from_checkpoint(global_checkpoint)
    expected = {
        "plain": colorizer.colorize_video(plain, tmp_path / "plain.mp4", temperature=0.8, progress=False, reference=str(reference)),
        "hinted": colorizer.colorize_video(hinted, tmp_path / "hinted.mp4", temperature=0.8, progress=False, palette=PALETTE,
                                           weights=[2, 1], hints=keyframes),
    }  # fmt: skip
    colorizer.colorize_video(hinted, tmp_path / "without.mp4", temperature=0.8, progress=False)
    for name, report in expected.items():
        ours, theirs = decoded_frames(out / f"{name}_colorized_T0.8.mp4"), decoded_frames(tmp_path / f"{name}.mp4")
        assert report.frames == len(ours) == 4 and all(np.array_equal(a, b) for a, b in zip(ours, theirs)), name
    assert not all(np.array_equal(a, b) for a, b in zip(decoded_frames(tmp_path / "hinted.mp4"), decoded_frames(tmp_path / "without.mp4")))


def test_a_video_s_bad_keyframe_hints_fail_it_alone(checkpoint: Path, global_checkpoint: Path, tmp_path: Path, capsys) -> None:
    """A keyframe past the clip's end, a hint without a frame, and hints for a model without
    hints: that video fails in one line; the photo beside it is written."""
    pytest.importorskip("av")
    from tests.test_video_io import make_video

    folder = tmp_path / "in"
    make_photos(folder, ["a.png"])
    late, frameless = make_video(folder / "late.avi", frames=3), make_video(folder / "frameless.avi", frames=3)
    (folder / "late.hints.json").write_text(json.dumps([{"frame": 7, "x": 5, "y": 5, "color": "#ff0000"}]))
    (folder / "frameless.hints.json").write_text(json.dumps([{"x": 5, "y": 5, "color": "#ff0000"}]))
    assert run_in_process(predict_args(global_checkpoint, [folder], tmp_path / "out")) == 1
    failed = sorted(line for line in capsys.readouterr().out.splitlines() if "FAILED" in line)
    assert files_under(tmp_path / "out") == {"a_colorized_T0.8.png"} and len(failed) == 2
    assert f"FAILED {frameless}: keyframe hint 1 " in failed[0] and "needs a frame" in failed[0]
    assert f"FAILED {late}: a keyframe hint is on frame 7, but the video has 3 frames" in failed[1]
    assert run_in_process(predict_args(checkpoint, [late], tmp_path / "plain")) == 1
    assert "keyframe hints were given, but this model was trained without hints (hints: false)" in capsys.readouterr().out
