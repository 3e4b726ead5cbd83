"""Hints files in ``lit-colorize predict`` (issue 26 cases 8 and 10): a sidecar or ``--data.hints``
that Python's JSON decoder cannot take (thousands of nested brackets, a 5000-digit number) fails
its photo alone in one line instead of ending the run; ``--data.hints`` keys that match no input
are refused before any work, with the input they were likely meant for; hints beside a video or
naming one fail that video alone (a video is colorized without hints)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lit_colorize.outputs import PredictSetupError
from lit_colorize.photo_files import MAX_HINTS_DEPTH, json_nesting, read_hints_file
from tests.test_predict_faults import files_under, make_photos, predict_args, run_in_process

DEEP = "[" * 100_000 + "]" * 100_000  # RecursionError in json.loads: the whole run ended
HUGE_NUMBER = '[{"x": ' + "9" * 5000 + ', "y": 1, "color": "#ff0000"}]'  # ValueError: over 4300 digits


@pytest.fixture(autouse=True)
def _command_line(monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["lit-colorize"])


@pytest.mark.parametrize("content, reason", [(DEEP, "nests 100000 levels deep"), (HUGE_NUMBER, "cannot read its hints file")],
                         ids=["nested", "5000-digit-number"])  # fmt: skip
def test_a_sidecar_python_cannot_decode_fails_its_photo_alone(content: str, reason: str, checkpoint: Path, tmp_path: Path, capsys) -> None:
    photos = make_photos(tmp_path / "in", ["a.png", "b.png"])
    sidecar = tmp_path / "in" / "a.hints.json"
    sidecar.write_text(content)
    out = tmp_path / "out"
    status = run_in_process(predict_args(checkpoint, [tmp_path / "in"], out))
    printed = capsys.readouterr().out
    assert status == 1 and files_under(out) == {"b_colorized_T0.8.png"}
    failed = [line for line in printed.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and failed[0].startswith(f"ColorizedPhotoWriter: FAILED {photos[0]}: ") and reason in failed[0]
    assert str(sidecar) in failed[0] and len(failed[0]) < 400


def test_a_deep_entry_in_data_hints_fails_that_photo_alone(checkpoint: Path, tmp_path: Path, capsys) -> None:
    photos = make_photos(tmp_path / "in", ["a.png", "b.png", "c.png"])
    mapping = tmp_path / "hints.json"
    mapping.write_text('{"%s": %s, "%s": []}' % (photos[0], DEEP, photos[1]))
    out = tmp_path / "out"
    status = run_in_process(predict_args(checkpoint, [tmp_path / "in"], out, "--data.hints", str(mapping)))
    printed = capsys.readouterr().out
    assert status == 1 and files_under(out) == {"b_colorized_T0.8.png", "c_colorized_T0.8.png"}
    expected = f"FAILED {photos[0]}: its hints in {mapping} nest more than {MAX_HINTS_DEPTH} levels deep"
    assert [line for line in printed.splitlines() if "FAILED" in line] == [
        f"ColorizedPhotoWriter: {expected}; a photo's hints are a list of {{x, y, color}}"
    ]


def test_a_hints_file_too_deep_or_undecodable_as_a_whole_is_one_line(tmp_path: Path) -> None:
    for content in (DEEP, '{"a.png": ' + HUGE_NUMBER + "}"):
        path = tmp_path / "hints.json"
        path.write_text(content)
        with pytest.raises(PredictSetupError, match=f"hints file {path}") as error:
            read_hints_file(path)
        assert "\n" not in str(error.value) and len(str(error.value)) < 400


def test_json_nesting_skips_brackets_inside_strings() -> None:
    nesting = json_nesting('{"a[": [{"x": "[[[[", "c": [1, 2, 3]}], "b": ' + "[" * 20 + "]" * 20 + "}", limit=8)
    assert nesting.depth == 21 and list(nesting.deep_members) == ["b"]


@pytest.mark.parametrize("case", ["case", "typo", "another folder"])
def test_hints_keys_that_match_no_input_are_refused_before_any_work(case: str, checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    """Case 10: such keys were dropped silently and the run exited 0 without the hints."""
    photos = make_photos(tmp_path / "in", ["beach.png", "b.png"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path / "in" if case != "another folder" else elsewhere)
    key, meant = {"case": ("Beach.png", photos[0]), "typo": ("beahc.png", None), "another folder": ("beach.png", photos[0])}[case]
    mapping = tmp_path / "hints.json"
    mapping.write_text(json.dumps({key: [{"x": 5, "y": 5, "color": "#ff0000"}], str(photos[1]): []}))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as error:
        run_main(predict_args(checkpoint, [tmp_path / "in"], out, "--data.hints", str(mapping)))
    message = str(error.value.code)
    assert message.startswith(f"lit-colorize predict: error: hints file {mapping} names 1 photo(s) not among the inputs: {key!r}")
    assert ("did you mean" not in message) if meant is None else (f"(did you mean {meant}?)" in message)
    assert "relative to the current folder" in message and "\n" not in message
    assert not out.exists()


def run_main(args: list[str]) -> None:
    from lit_colorize.cli import main

    main(args)


def test_hints_for_a_video_fail_that_video_alone(checkpoint: Path, tmp_path: Path, capsys) -> None:
    """Case 10: hints beside a video were ignored without a word; they are keyframe hints now,
    refused in one line by a model without hints."""
    pytest.importorskip("av")
    from tests.test_video_io import make_video

    (photo,) = make_photos(tmp_path / "in", ["a.png"])
    clip, named = make_video(tmp_path / "in" / "clip.avi", frames=3), make_video(tmp_path / "in" / "named.avi", frames=3)
    (tmp_path / "in" / "clip.hints.json").write_text(json.dumps([{"x": 5, "y": 5, "color": "#ff0000"}]))
    mapping = tmp_path / "hints.json"
    mapping.write_text(json.dumps({str(named): [{"x": 5, "y": 5, "color": "#ff0000"}]}))
    out = tmp_path / "out"
    status = run_in_process(predict_args(checkpoint, [tmp_path / "in"], out, "--data.hints", str(mapping)))
    failed = sorted(line for line in capsys.readouterr().out.splitlines() if "FAILED" in line)
    assert status == 1 and files_under(out) == {"a_colorized_T0.8.png"}
    assert failed == [  # a video's hints are keyframe hints (issue 30), which this model cannot take
        f"ColorizedPhotoWriter: FAILED {video}: keyframe hints were given, but this model was trained without hints (hints: false)"
        for video in (clip, named)
    ]
