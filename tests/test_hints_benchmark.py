"""benchmarks/hints.py's issue-30 sections on a tiny model, CPU: the global-hint rows (pairs of
one category, histogram intersection with the reference, L* kept) and the keyframe-hint rows
(truth hints on frame 0 carried along a clip). Oracles: the Colorizer's own API for the outputs,
numpy for PSNR, skimage for L*, and hand-made pairs; then one run of the command itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2lab

from benchmarks import hints as bench
from lit_colorize import Colorizer
from lit_colorize.global_hints import reference_distribution
from tests.conftest import REPO_ROOT
from tests.test_predict_global_hints import scaled_global_checkpoint

T = 0.8


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Local and global hints, the global one weighing heavily (tests/test_predict_global_hints.py's)."""
    return scaled_global_checkpoint(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A corpus of 5 photos: 2 in source-a/nature, 2 in source-b/street, 1 alone in source-a/people;
    and its held-out list (a comment line, paths relative to the corpus)."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    names = ["source-a/nature/n1.png", "source-a/nature/n2.png", "source-b/street/s2.png", "source-b/street/s1.png", "source-a/people/p.png"]
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, 3)  # a tinted photo, so references differ in color
        pixels = np.clip(base + rng.integers(-40, 40, (30 + i, 44, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / name)
    listing = root / "heldout.txt"
    listing.write_text("# held-out\n" + "\n".join(names) + "\n")
    return root, listing


def test_pairs_are_within_a_category_and_each_photo_is_a_target_once(corpus: tuple[Path, Path]) -> None:
    root, listing = corpus
    entries = bench.global_photos(root, listing, every=1)
    assert [category for category, _ in entries] == ["nature", "nature", "street", "street", "people"]
    pairs = bench.reference_pairs(entries)
    named = [(category, photo.name, reference.name) for category, photo, reference in pairs]
    assert named == [("nature", "n1.png", "n2.png"), ("nature", "n2.png", "n1.png"),
                     ("street", "s1.png", "s2.png"), ("street", "s2.png", "s1.png")]  # fmt: skip
    assert bench.intersection(torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.25, 0.25, 0.5])) == pytest.approx(0.5)
    with pytest.raises(SystemExit, match="missing under"):
        bench.global_photos(root / "elsewhere", listing, every=1)


def test_global_rows_match_the_colorizer_given_the_same_hints(model: Path, corpus: tuple[Path, Path]) -> None:
    """Each row's intersection and L* error, recomputed from ``Colorizer.colorize`` with the
    reference (or the photo itself, or nothing) and skimage's L*; PSNR of the no-hint row by numpy."""
    root, listing = corpus
    pairs = bench.reference_pairs(bench.global_photos(root, listing, every=1))
    colorizer = Colorizer.from_checkpoint(model)
    net = colorizer.module.net
    result = bench.measure_global(net, pairs, net.predict_short_side, T)
    expected: dict[str, dict[str, list[float]]] = {row: {"hi": [], "l": [], "psnr": []} for row in bench.GLOBAL_ROWS}
    for _, photo, other in pairs:
        truth = np.asarray(Image.open(photo).convert("RGB"))
        target = reference_distribution(torch.from_numpy(np.array(Image.open(other).convert("RGB"))).permute(2, 0, 1), net.grid_size)
        for row, given in zip(bench.GLOBAL_ROWS, ({}, {"reference": str(photo)}, {"reference": str(other)})):
            out = np.asarray(colorizer.colorize(str(photo), temperature=T, **given))  # a path in, a PIL image out
            got = reference_distribution(torch.from_numpy(out.copy()).permute(2, 0, 1), net.grid_size).distribution
            expected[row]["hi"].append(float(np.minimum(got.numpy(), target.distribution.numpy()).sum()))
            expected[row]["l"].append(float(np.abs(rgb2lab(out)[..., 0] - rgb2lab(truth)[..., 0]).mean()))
            expected[row]["psnr"].append(10 * np.log10(1 / np.mean((out / 255.0 - truth / 255.0) ** 2)))
    for row in bench.GLOBAL_ROWS:
        assert result[row]["intersection"] == pytest.approx(np.mean(expected[row]["hi"]), abs=1e-5), row
        assert result[row]["l_error"] == pytest.approx(np.mean(expected[row]["l"]), abs=0.02), row
        assert result[row]["psnr_mean"] == pytest.approx(np.mean(expected[row]["psnr"]), abs=1e-3), row
    assert result["reference"]["intersection"] != result["no hint"]["intersection"]  # the reference is used


def test_video_rows_carry_frame_0_truth_hints_and_match_the_colorizer(model: Path, tmp_path: Path) -> None:
    """Frame 0 holds the 10 truth hints (truth_hints of the true frame); later frames at most
    10; the no-hint row's PSNR is the stabilised Colorizer's frames against the originals (numpy)."""
    pytest.importorskip("av")
    from lit_colorize.video.colorize import FrameColorizer
    from tests.test_video_io import make_video

    clip = make_video(tmp_path / "clip.avi", frames=5, width=64, height=48)
    colorizer = Colorizer.from_checkpoint(model)
    net = colorizer.module.net
    frames = bench.first_frames(clip, 4)
    assert len(frames) == 4
    carried = bench.carried_truth_hints(FrameColorizer(net, [T]), frames, seed=0)
    first = torch.from_numpy(frames[0]).permute(2, 0, 1)
    lab = torch.from_numpy(rgb2lab(frames[0])).permute(2, 0, 1).float()
    direct = bench.truth_hints(first, lab, bench.VIDEO_HINTS, torch.Generator().manual_seed(0))
    assert [(h.x, h.y, h.rgb) for h in carried[0]] == [(h.x, h.y, h.rgb) for h in direct]
    assert all(a == pytest.approx(b, abs=0.05) for h, d in zip(carried[0], direct) for a, b in zip(h.ab, d.ab))
    assert all(len(carried.get(i, [])) <= bench.VIDEO_HINTS for i in range(1, 4))
    rows = bench.video_rows(net, clip, 4, T, seed=0)
    stabilised = list(colorizer.colorize_frames(frames, temperature=T, temporal_consistency=True))
    psnr = [10 * np.log10(1 / np.mean((out / 255.0 - truth / 255.0) ** 2)) for out, truth in zip(stabilised, frames)]
    assert rows["no hints"]["frames"] == 4 and rows["no hints"]["psnr_mean"] == pytest.approx(np.mean(psnr), abs=1e-3)
    assert rows["frame-0 hints"]["hints"] >= bench.VIDEO_HINTS and rows["no hints"]["hints"] == 0
    assert rows["frame-0 hints"]["psnr_mean"] != rows["no hints"]["psnr_mean"]


@pytest.mark.slow
def test_the_global_and_video_sections_run_from_the_command_line(model: Path, corpus: tuple[Path, Path], checkpoint: Path, tmp_path: Path) -> None:
    """One run, both sections, the twin rows: tables, one verdict per target, exit 1 exactly
    when one is missed (a tiny model misses them), no traceback; the sweep rows are not run."""
    pytest.importorskip("av")
    from tests.test_video_io import make_video

    root, listing = corpus
    clips = tmp_path / "clips"
    clips.mkdir()
    make_video(clips / "a.avi", frames=4, width=64, height=48)
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.hints", "--global", str(model), "--twin_ckpt", str(checkpoint), "--corpus", str(root),
         "--heldout", str(listing), "--every", "1", "--working_sizes", "32", "--video", str(clips), "--frames", "3",
         "--hint_ckpt", str(model)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr[-3000:]
    out = result.stdout
    assert "4 " + str(root) in out and "Global hints (both, working size 32): 4 photos" in out
    for row in ("no hint ", "truth's own ", "reference ", "same recipe, no global hints"):
        assert f"\n{row}" in out, row
    assert "a.avi                      no hints" in out and "a.avi                      frame-0 hints" in out
    assert "mean over clips" in out and "Locality:" not in out
    verdicts = out.count("\nMET    ") + out.count("\nNOT MET")
    assert verdicts == 8 and result.returncode == int("NOT MET" in out)  # 4 global, 2 twin, 2 video
