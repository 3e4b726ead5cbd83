"""benchmarks/semantic.py: labels from corpus names, the gray view, the gap share, and a small
real learning run on a generated tree whose classes only color tells apart."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from benchmarks import semantic
from benchmarks.semantic import INTEL_CLASSES, LabelError, bootstrap_interval, gap_share, gray_photo, label_of, labelled, square

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("entry", "label"),
    [
        ("caltech101/objects/101_ObjectCategories--Leopards--image_0001.jpg", "caltech101/Leopards"),
        ("caltech101/people/101_ObjectCategories--Faces--image_0412.jpg", "caltech101/Faces"),
        ("caltech101/street/101_ObjectCategories--pagoda--image_0003.jpg", "caltech101/pagoda"),
        ("caltech101/objects/101_ObjectCategories--inline_skate--image_0010.jpg", "caltech101/inline_skate"),
        ("intel/street/dataset--seg_train--buildings--10006.jpg", "intel/buildings"),
        ("intel/street/dataset--seg_train--street--10131.jpg", "intel/street"),
        ("intel/nature/dataset--seg_train--sea--1.jpg", "intel/sea"),
        ("imagenet/objects/n01440764_tench_jpeg.jpg", None),
        ("bsds500/mixed/train--100080.jpg", None),
        ("facemask/people/dataset--with_mask--0_0_0.jpg", None),
    ],
)
def test_label_of_corpus_names(entry: str, label: str | None) -> None:
    assert label_of(entry) == label


@pytest.mark.parametrize(
    "entry",
    [
        "caltech101/objects/Leopards_0001.jpg",
        "caltech101/objects/101_ObjectCategories--Leopards.jpg",
        "intel/street/dataset--seg_test--street--20057.jpg",  # Intel's test set is never in the corpus
        "intel/nature/dataset--seg_train--lake--7.jpg",
    ],
)
def test_label_of_refuses_a_labelled_source_s_odd_name(entry: str) -> None:
    with pytest.raises(LabelError, match=entry.replace("-", r"\-")):
        label_of(entry)


def test_committed_split_has_99_caltech_and_6_intel_classes() -> None:
    train = labelled(semantic.read_list(REPO_ROOT / "docs" / "data" / "train.txt"))
    heldout = labelled(semantic.read_list(REPO_ROOT / "docs" / "data" / "heldout.txt"))
    classes = {label for _, label in train}
    assert sum(c.startswith("caltech101/") for c in classes) == 99
    assert {c for c in classes if c.startswith("intel/")} == {f"intel/{name}" for name in INTEL_CLASSES}
    assert "caltech101/Faces_easy" not in classes and "caltech101/Faces" in classes  # the builder drops the re-crops
    assert {label for _, label in heldout} <= classes
    assert not {entry for entry, _ in train} & {entry for entry, _ in heldout}


def test_gray_photo_keeps_l_and_zeroes_ab() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
    gray = gray_photo(torch.from_numpy(rgb).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    lab, lab_gray = rgb2lab(rgb), rgb2lab(gray)
    assert np.abs(lab[..., 1:]).max() > 50  # the input had color to take away
    assert np.abs(lab_gray[..., 0] - lab[..., 0]).max() < 0.5  # uint8 rounding of the gray level
    # a = b = 0 rounds to R = G = B but for a rare channel one level off (under 1 ab unit)
    assert np.abs(lab_gray[..., 1:]).max() < 1.0 and np.abs(lab_gray[..., 1:]).mean() < 0.05


def test_square_takes_the_center_of_the_longer_side() -> None:
    rgb = torch.zeros(3, 4, 8, dtype=torch.uint8)
    rgb[0, :, :2] = 255  # red left quarter
    rgb[1, :, 2:6] = 255  # green middle half
    rgb[2, :, 6:] = 255  # blue right quarter
    out = square(rgb, 4)
    assert out.shape == (3, 4, 4)
    assert out[1].eq(255).all() and out[0].eq(0).all() and out[2].eq(0).all()
    small = square(torch.full((3, 30, 10), 77, dtype=torch.uint8), 5)
    assert small.shape == (3, 5, 5) and small.eq(77).all()


def test_random_crops_are_windows_of_their_image_some_flipped() -> None:
    images = torch.arange(4 * 3 * 9 * 9).reshape(4, 3, 9, 9).remainder(251).to(torch.uint8)
    crops = semantic.random_crops(images.repeat(8, 1, 1, 1), 5, torch.Generator().manual_seed(0))
    flipped = 0
    for crop, image in zip(crops.mul(255).round().to(torch.uint8), images.repeat(8, 1, 1, 1)):
        windows = {(t, l, f) for t in range(5) for l in range(5) for f in (False, True)
                   if torch.equal(crop, (image.flip(-1) if f else image)[:, t : t + 5, l : l + 5])}  # fmt: skip
        assert windows
        flipped += all(f for _, _, f in windows)
    assert 4 <= flipped <= 28  # about half of 32


@pytest.mark.parametrize(
    ("real", "gray", "colorized", "share"),
    [(0.60, 0.40, 0.50, 0.5), (0.60, 0.40, 0.35, -0.25), (0.60, 0.40, 0.60, 1.0), (0.90, 0.30, 0.50, 1 / 3)],
)
def test_gap_share_on_hand_numbers(real: float, gray: float, colorized: float, share: float) -> None:
    assert gap_share(real, gray, colorized) == pytest.approx(share)


def test_gap_share_without_a_gap_is_nan() -> None:
    assert math.isnan(gap_share(0.4, 0.4, 0.5)) and math.isnan(gap_share(0.3, 0.4, 0.5))


def test_bootstrap_interval_of_the_gap_share() -> None:
    n = 400
    real, gray = torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)
    assert bootstrap_interval(real, gray, real.clone(), seed=0) == (1.0, 1.0)
    assert bootstrap_interval(real, gray, gray.clone(), seed=0) == (0.0, 0.0)
    half = torch.arange(n) % 2 == 0  # share = the colorized accuracy here: binomial, sd sqrt(.25 / 400) = 0.025
    low, high = bootstrap_interval(real, gray, half, seed=0)
    assert 0.5 - 1.96 * 0.025 - 0.01 < low < 0.5 - 1.96 * 0.025 + 0.01
    assert 0.5 + 1.96 * 0.025 - 0.01 < high < 0.5 + 1.96 * 0.025 + 0.01


# --- a small run of the whole script ------------------------------------------------------
#: Four classes at the same lightness, told apart by their chroma alone (a*, b* of CIE Lab).
CLASS_CHROMA = {
    "caltech101/objects/101_ObjectCategories--crimson--image_{:04d}.jpg": (45, 0),
    "caltech101/objects/101_ObjectCategories--teal--image_{:04d}.jpg": (-45, 0),
    "intel/nature/dataset--seg_train--glacier--{:d}.jpg": (0, -45),
    "intel/nature/dataset--seg_train--forest--{:d}.jpg": (0, 45),
}


def color_tree(root: Path, train_per_class: int = 24, heldout_per_class: int = 8) -> tuple[Path, Path]:
    """Photos whose L* is the same random texture for every class and whose a*, b* is the class's:
    real color defines the class, gray carries none of it. Returns the two split lists."""
    rng = np.random.default_rng(0)
    lists: dict[str, list[str]] = {"train": ["# a comment line", "imagenet/objects/n0_unlabelled_jpeg.jpg"], "heldout": []}
    for pattern, (a, b) in CLASS_CHROMA.items():
        for i in range(train_per_class + heldout_per_class):
            lab = np.empty((32, 40, 3))
            lab[..., 0] = np.kron(rng.uniform(45, 75, size=(8, 10)), np.ones((4, 4)))
            lab[..., 1], lab[..., 2] = a + rng.normal(0, 4), b + rng.normal(0, 4)
            entry = pattern.format(i + 1)
            (root / entry).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((lab2rgb(lab) * 255).round().astype(np.uint8)).save(root / entry, quality=95)
            lists["train" if i < train_per_class else "heldout"].append(entry)
    unlabelled = root / "imagenet/objects/n0_unlabelled_jpeg.jpg"
    unlabelled.parent.mkdir(parents=True)
    Image.new("RGB", (32, 32), (200, 30, 30)).save(unlabelled)
    paths = []
    for name, entries in lists.items():
        paths.append(root / f"{name}.txt")
        paths[-1].write_text("\n".join(entries) + "\n", encoding="utf-8")
    return paths[0], paths[1]


def test_main_learns_color_classes_that_gray_cannot_tell_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    train, heldout = color_tree(corpus)
    out = tmp_path / "report.txt"
    argv = [
        "--corpus", str(corpus), "--train-list", str(train), "--heldout-list", str(heldout), "--size", "24",
        "--epochs", "12", "--widths", "8", "16", "--batch-size", "16", "--lr", "0.05", "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    report = semantic.main([*argv, "--out", str(out)])
    real, gray, colorized = report.rows
    assert [real.name, gray.name] == ["real color", "gray (L only, a = b = 0)"]
    assert colorized.name == "colorized: landscape64_v1.ckpt"  # the shipped model by default
    assert len(real.scores["top-1"]) == 32
    assert real.mean("top-1") >= 0.9  # learned from color
    assert gray.mean("top-1") <= 0.45  # chance is 0.25: gray holds no class
    assert real.mean("cross-entropy") < 0.5 < math.log(4) - 0.2 < gray.mean("cross-entropy")
    assert "saved to" in report.lines[2] and "4 classes (2 caltech101, 2 intel)" in report.lines[2]
    printed = capsys.readouterr().out
    assert out.read_text(encoding="utf-8") == printed == "\n".join(report.lines) + "\n"
    table = [line for line in report.lines if line.startswith("colorized: ")][1].split()
    share = gap_share(real.mean("top-1"), gray.mean("top-1"), colorized.mean("top-1"))
    ce_share = (gray.mean("cross-entropy") - colorized.mean("cross-entropy")) / (gray.mean("cross-entropy") - real.mean("cross-entropy"))
    assert table[2] == f"{100 * share:.1f}%" and table[8] == f"{100 * ce_share:.1f}%"

    # the cached classifier: the same scores, no training; one row per --model
    again = semantic.main([*argv, "--model", "landscape64_v1.ckpt", "--model", "landscape64_hints_v1.ckpt"])
    assert "loaded from" in again.lines[2] and "saved to" not in again.lines[2]
    assert [row.name for row in again.rows[2:]] == ["colorized: landscape64_v1.ckpt", "colorized: landscape64_hints_v1.ckpt"]
    assert [torch.equal(a.scores["top-1"], b.scores["top-1"]) for a, b in zip(report.rows, again.rows)] == [True] * 3
    retrained = semantic.main([*argv, "--retrain"])
    assert "saved to" in retrained.lines[2] and "loaded from" not in retrained.lines[2]


def test_main_names_a_listed_photo_that_is_missing(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    train, heldout = color_tree(corpus, train_per_class=2, heldout_per_class=1)
    gone = corpus / "intel/nature/dataset--seg_train--forest--3.jpg"
    gone.unlink()
    argv = ["--corpus", str(corpus), "--train-list", str(train), "--heldout-list", str(heldout), "--epochs", "1", "--size", "16"]
    with pytest.raises(SystemExit, match=f"{gone} is listed but missing"):
        semantic.main([*argv, "--widths", "4", "8", "--cache-dir", str(tmp_path / "cache")])


def test_main_refuses_a_missing_model_or_an_unlabelled_name_before_training(tmp_path: Path) -> None:
    corpus, cache = tmp_path / "corpus", tmp_path / "cache"
    train, heldout = color_tree(corpus, train_per_class=2, heldout_per_class=1)
    argv = ["--corpus", str(corpus), "--heldout-list", str(heldout), "--size", "16", "--widths", "4", "--cache-dir", str(cache)]
    with pytest.raises(SystemExit, match="--model nowhere.ckpt: no such checkpoint"):
        semantic.main([*argv, "--train-list", str(train), "--model", "nowhere.ckpt"])
    odd = tmp_path / "odd.txt"
    odd.write_text(train.read_text(encoding="utf-8") + "caltech101/objects/Leopards_0001.jpg\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="caltech101/objects/Leopards_0001.jpg: a caltech101 photo named unlike"):
        semantic.main([*argv, "--train-list", str(odd)])
    assert not cache.exists()  # nothing was trained
