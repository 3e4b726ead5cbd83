"""``lit-colorize evaluate`` against an independent oracle: a tiny folder of photos of different
sizes made here, the metrics computed again by hand with numpy and scikit-image (Lab, PSNR, SSIM,
a naive AuC and a naive Hasler-Suesstrunk colorfulness), the outputs taken from the public
``Colorizer`` (the path predict uses)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import lab2rgb, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lit_colorize import ColorizationModule, Colorizer
from lit_colorize.cli import main
from lit_colorize.colorizer import module_from_checkpoint
from lit_colorize.errors import ConfigError
from lit_colorize.evaluation import (
    DEFAULT_SETTINGS,
    GRAY,
    GRID_TILE_HEIGHT,
    GRID_TILE_MAX_WIDTH,
    PSNR_CAP_DB,
    TRUTH,
    Setting,
    choose_settings,
    evaluate,
)

SIZES = [(40, 56), (48, 48), (64, 36)]  # (height, width): three shapes, each >= the SSIM window


def color_photo(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth colorful gradient with some noise, uint8 (H, W, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    rgb = np.stack([0.2 + 0.7 * x, 0.8 - 0.6 * y, 0.5 + 0.4 * np.sin(6 * x * y + seed)], axis=-1)
    return np.clip((rgb + rng.normal(0, 0.03, rgb.shape)) * 255, 0, 255).round().astype(np.uint8)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed, (height, width) in enumerate(SIZES):
        Image.fromarray(color_photo(height, width, seed)).save(folder / f"p{seed}.png")
    return folder


# --- the oracle -------------------------------------------------------------------------------
def naive_auc(errors: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean over t = 0..150 of the (weighted) fraction of pixels with ab error <= t."""
    weights = np.ones_like(errors) if weights is None else weights
    return float(np.mean([(weights * (errors <= t)).sum() / weights.sum() for t in range(151)]))


def naive_colorfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk (2003) on 0..255 RGB (H, W, 3)."""
    red, green, blue = (rgb.astype(np.float64)[..., c] for c in range(3))
    rg, yb = red - green, 0.5 * (red + green) - blue
    return math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean())


def naive_bins(ab: np.ndarray, grid_size: int) -> np.ndarray:
    """The flat bin of each ab pixel (H, W, 2): the normalized ab (ab + 128) / 255 cut in grid_size."""
    index = np.minimum(np.floor(np.clip((ab + 128) / 255, 0, 1) * grid_size), grid_size - 1).astype(int)
    return index[..., 0] * grid_size + index[..., 1]


def oracle(truths: list[np.ndarray], outputs: list[np.ndarray], prior: np.ndarray, grid_size: int) -> dict[str, float]:
    """Every metric of one row, from uint8 (H, W, 3) photos and the outputs for them."""
    errors, weights, psnr, ssim, cf, delta_cf = [], [], [], [], [], []
    for truth, output in zip(truths, outputs):
        ab_true, ab_out = rgb2lab(truth / 255.0)[..., 1:], rgb2lab(output / 255.0)[..., 1:]
        errors.append(np.linalg.norm(ab_out - ab_true, axis=-1).ravel())
        p = prior[naive_bins(ab_true, grid_size)].ravel()
        weights.append(np.where(p > 0, 1.0 / np.where(p > 0, p, 1.0), 0.0))
        # The documented rule: a photo's PSNR is capped at uint8 rounding noise (identical: the cap, not inf).
        psnr.append(min(PSNR_CAP_DB, peak_signal_noise_ratio(truth / 255.0, output / 255.0, data_range=1.0)))
        ssim.append(structural_similarity(truth / 255.0, output / 255.0, data_range=1.0, channel_axis=2,
                                          gaussian_weights=True, sigma=1.5, use_sample_covariance=False))  # fmt: skip
        cf.append(naive_colorfulness(output))
        delta_cf.append(abs(cf[-1] - naive_colorfulness(truth)))
    errors_all, weights_all = np.concatenate(errors), np.concatenate(weights)
    return {
        "auc": naive_auc(errors_all),
        "auc_rebalanced": naive_auc(errors_all, weights_all),
        "psnr_mean": float(np.mean(psnr)),
        "psnr_median": float(np.median(psnr)),
        "ssim": float(np.mean(ssim)),
        "cf": float(np.mean(cf)),
        "delta_cf": float(np.mean(delta_cf)),
    }


def gray_of(rgb: np.ndarray) -> np.ndarray:
    """The photo's L with ab = 0, back to uint8 RGB, by scikit-image."""
    lab = rgb2lab(rgb / 255.0)
    lab[..., 1:] = 0
    return (lab2rgb(lab) * 255).round().astype(np.uint8)


# Kornia (the code) and scikit-image (the oracle) differ in the last bits of Lab (float32 against
# float64), which may move a pixel's ab error across an integer threshold of the AuC.
TOLERANCE = {
    "auc": 1e-3, "auc_rebalanced": 1e-3, "psnr_mean": 1e-3, "psnr_median": 1e-3, "ssim": 1e-4, "cf": 1e-3, "delta_cf": 1e-3,
}  # fmt: skip


def assert_row(measured: dict[str, float], expected: dict[str, float]) -> None:
    for key, tolerance in TOLERANCE.items():
        assert measured[key] == pytest.approx(expected[key], abs=tolerance), key


# --- the tests --------------------------------------------------------------------------------
def test_evaluate_matches_hand_computed_metrics(photos: Path, checkpoint: Path) -> None:
    module = module_from_checkpoint(checkpoint)
    grid_size = module.net.grid_size
    prior = module.net.color_table.counts.double().numpy()
    prior = prior / prior.sum()
    result = evaluate(module, [photos], log=lambda message: None)

    paths = sorted(photos.iterdir())
    assert result.photos == paths and result.skipped == [] and result.gray_photos == 0
    truths = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    assert list(result.rows) == [GRAY, *(s.name for s in DEFAULT_SETTINGS), TRUTH]
    assert_row(result.rows[GRAY], oracle(truths, [gray_of(t) for t in truths], prior, grid_size))
    assert result.rows[TRUTH]["cf"] == pytest.approx(np.mean([naive_colorfulness(t) for t in truths]), abs=1e-6)

    colorizer = Colorizer(module_from_checkpoint(checkpoint))  # the Python API: the path predict uses
    for setting in DEFAULT_SETTINGS:
        colorizer.module.net.decoding = setting.decoding
        outputs = [np.asarray(colorizer.colorize(str(path), temperature=setting.temperature)) for path in paths]
        assert_row(result.rows[setting.name], oracle(truths, outputs, prior, grid_size))
        ab_error = [rgb2lab(o / 255.0)[..., 1:] - rgb2lab(t / 255.0)[..., 1:] for t, o in zip(truths, outputs)]
        errors = [np.linalg.norm(e, axis=-1).mean() for e in ab_error]
        assert result.ab_errors[setting.name] == pytest.approx(errors, abs=1e-3)
    best = result.best()
    assert best["auc_rebalanced"] == max(DEFAULT_SETTINGS, key=lambda s: result.rows[s.name]["auc_rebalanced"]).name
    assert best["delta_cf"] == min(DEFAULT_SETTINGS, key=lambda s: result.rows[s.name]["delta_cf"]).name


def test_gray_photo_gray_row_is_the_photo_itself(tmp_path: Path, checkpoint: Path) -> None:
    """Gray of a gray photo is the photo: its PSNR is the documented cap (not inf), ΔCF about 0,
    and the photo is counted as gray, yet evaluated."""
    folder = tmp_path / "gray"
    folder.mkdir()
    level = color_photo(32, 40, seed=5).mean(axis=2).round().astype(np.uint8)
    Image.fromarray(np.repeat(level[..., None], 3, axis=2)).save(folder / "gray.png")
    result = evaluate(module_from_checkpoint(checkpoint), [folder], [Setting("mode_mean", 0.8)], log=lambda m: None)
    gray = result.rows[GRAY]
    assert result.gray_photos == 1 and len(result.photos) == 1
    assert math.isfinite(gray["psnr_mean"]) and gray["psnr_mean"] == pytest.approx(PSNR_CAP_DB)
    assert gray["psnr_median"] == pytest.approx(PSNR_CAP_DB)
    assert gray["ssim"] == pytest.approx(1.0, abs=1e-3)
    assert gray["auc"] == pytest.approx(1.0, abs=0.01) and gray["delta_cf"] < 0.5


def test_regression_model_rebalances_by_the_photos_own_prior(photos: Path) -> None:
    """A regression model has no bin table: one row, and the rebalanced AuC weighs each pixel by
    the inverse frequency of its true bin among the evaluated pixels."""
    module = ColorizationModule(head="regression", widths=(8, 16)).eval()
    result = evaluate(module, [photos], working_size=32, log=lambda m: None)
    assert list(result.rows) == [GRAY, "regression", TRUTH] and len(result.grid_photos()) == 3
    paths = sorted(photos.iterdir())
    truths = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    grid_size = module.net.grid_size
    bins = np.concatenate([naive_bins(rgb2lab(t / 255.0)[..., 1:], grid_size).ravel() for t in truths])
    own_prior = np.bincount(bins, minlength=grid_size**2) / bins.size
    outputs = [np.asarray(Colorizer(module, working_size=32).colorize(str(path))) for path in paths]
    assert_row(result.rows["regression"], oracle(truths, outputs, own_prior, grid_size))


def test_unreadable_photo_is_reported_and_skipped(photos: Path, checkpoint: Path) -> None:
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    messages: list[str] = []
    module = module_from_checkpoint(checkpoint)
    result = evaluate(module, [photos], [Setting("mode_mean", 0.8)], max_photos=2, log=messages.append)
    assert result.skipped == [str(photos / "broken.jpg")]
    assert any(str(photos / "broken.jpg") in m for m in messages)
    assert len(result.photos) == 2  # --max_photos counts photos evaluated


def test_choose_settings(checkpoint: Path) -> None:
    net = module_from_checkpoint(checkpoint).net
    assert choose_settings(None, None, net) == list(DEFAULT_SETTINGS)
    assert choose_settings([0, 0.8], None, net) == [Setting(net.decoding, 0.0), Setting(net.decoding, 0.8)]
    paired = [Setting("annealed_mean", 0.38), Setting("mode_mean", 1.0)]
    assert choose_settings([0.38, 1], ["annealed_mean", "mode_mean"], net) == paired
    assert [s.temperature for s in choose_settings(None, ["annealed_mean"], net)] == [0.0, 0.38, 0.8, 1.0]
    with pytest.raises(ConfigError, match="one per temperature"):
        choose_settings([0, 0.8, 1], ["mode_mean", "annealed_mean"], net)
    with pytest.raises(ConfigError, match="unknown decoding"):
        choose_settings([0.8], ["median"], net)
    with pytest.raises(ConfigError, match="temperatures"):
        choose_settings([-1], None, net)


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as stream:
        return {row["setting"]: row for row in csv.DictReader(stream)}


def test_command_writes_table_and_grid_and_keeps_existing_files(
    photos: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "evaluation"
    args = ["evaluate", "--ckpt_path", str(checkpoint), "--data.inputs", f"[{photos}/]", "--out", str(out),
            "--temperatures", "[0, 0.8]", "--decodings", "mode_mean"]  # fmt: skip
    main(args)
    printed = capsys.readouterr().out
    assert "| setting | AuC | AuC rebal | PSNR mean | PSNR median | SSIM | CF | ΔCF |" in printed
    assert "mode_mean T=0.8" in printed and "Best setting per metric" in printed
    assert (out / "metrics.md").read_text(encoding="utf-8") in printed

    settings = [Setting("mode_mean", 0.0), Setting("mode_mean", 0.8)]
    expected = evaluate(module_from_checkpoint(checkpoint), [photos], settings, log=lambda m: None)
    table = read_csv(out / "metrics.csv")
    assert list(table) == [GRAY, "mode_mean T=0", "mode_mean T=0.8", TRUTH]
    for name in (GRAY, "mode_mean T=0.8"):
        for key, value in expected.rows[name].items():
            assert float(table[name][key]) == pytest.approx(value, rel=1e-6), (name, key)
    assert table[TRUTH]["auc"] == "" and float(table[TRUTH]["cf"]) == pytest.approx(expected.rows[TRUTH]["cf"])
    assert table[GRAY]["photos"] == "3"

    with Image.open(out / "grid.png") as grid:  # best, median, worst rows; gray | truth | output, 4 px gaps
        assert grid.height == 3 * GRID_TILE_HEIGHT + 2 * 4
        widest = max(round(w * GRID_TILE_HEIGHT / h) for h, w in SIZES)
        assert grid.width == 3 * widest + 2 * 4
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(SystemExit) as refused:
        main(args)
    message = str(refused.value.code)
    assert "\n" not in message and "--overwrite" in message and f"{out} already holds metrics.md" in message
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    main([*args, "--overwrite"])
    assert read_csv(out / "metrics.csv") == table


@pytest.mark.parametrize("case", ["missing folder", "empty folder", "bad checkpoint"])
def test_command_user_errors_are_one_line(case: str, photos: Path, checkpoint: Path, tmp_path: Path) -> None:
    inputs, ckpt = photos, checkpoint
    if case == "missing folder":
        inputs = tmp_path / "nowhere"
    elif case == "empty folder":
        inputs = tmp_path / "empty"
        inputs.mkdir()
    else:
        ckpt = tmp_path / "bad.ckpt"
        ckpt.write_bytes(b"garbage")
    with pytest.raises(SystemExit) as error:
        main(["evaluate", "--ckpt_path", str(ckpt), "--data.inputs", f"[{inputs}]", "--out", str(tmp_path / "out")])
    message = str(error.value.code)
    assert message.startswith("lit-colorize evaluate: error: ") and "\n" not in message
    assert str(ckpt if case == "bad checkpoint" else inputs) in message
    assert not (tmp_path / "out").exists()


def test_files_from_evaluates_exactly_the_listed_photos(
    photos: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A held-out split as a list: relative to the current folder, comments and blanks skipped.
    monkeypatch.chdir(photos.parent)
    listing = tmp_path / "held_out.txt"
    listing.write_text("# held-out split\n\nphotos/p0.png\n  photos/p2.png  \n", encoding="utf-8")
    out = tmp_path / "listed"
    main(["evaluate", "--ckpt_path", str(checkpoint), "--files_from", str(listing), "--out", str(out),
          "--temperatures", "[0.8]", "--decodings", "mode_mean"])  # fmt: skip
    expected = evaluate(
        module_from_checkpoint(checkpoint), [photos / "p0.png", photos / "p2.png"], [Setting("mode_mean", 0.8)], log=lambda m: None
    )
    table = read_csv(out / "metrics.csv")
    assert table[GRAY]["photos"] == "2"
    assert float(table["mode_mean T=0.8"]["auc"]) == pytest.approx(expected.rows["mode_mean T=0.8"]["auc"], rel=1e-6)

    listing.write_text("photos/p0.png\nphotos/gone.png\n", encoding="utf-8")
    with pytest.raises(SystemExit) as error:
        main(["evaluate", "--ckpt_path", str(checkpoint), "--files_from", str(listing), "--out", str(tmp_path / "o2")])
    message = str(error.value.code)
    assert f"{listing}:2: photos/gone.png does not exist" in message and "\n" not in message
    with pytest.raises(SystemExit, match="--files_from"):
        main(["evaluate", "--ckpt_path", str(checkpoint), "--out", str(tmp_path / "o3")])


# --- issue 26: videos, memory, the grid and --out --------------------------------------------
def test_videos_among_the_inputs_are_skipped_with_one_line(photos: Path, checkpoint: Path, tmp_path: Path) -> None:
    """Case 6: a video among the inputs crashed evaluate (AttributeError on its missing pixels)."""
    pytest.importorskip("av")
    from tests.test_video_io import make_video

    clip = make_video(photos / "clip.avi", frames=3)
    messages: list[str] = []
    result = evaluate(module_from_checkpoint(checkpoint), [photos], [Setting("mode_mean", 0.8)], log=messages.append)
    assert result.videos == [str(clip)] and len(result.photos) == 3 and result.skipped == []
    assert [m for m in messages if str(clip) in m] == [f"skipped: {clip} is a video; evaluate measures photos (benchmarks/video.py measures videos)"]

    with pytest.raises(SystemExit) as error:  # nothing but a video: one line, nothing written
        main(["evaluate", "--ckpt_path", str(checkpoint), "--data.inputs", f"[{clip}]", "--out", str(tmp_path / "out")])
    message = str(error.value.code)
    assert message.startswith("lit-colorize evaluate: error: none of the 1 file(s)") and "\n" not in message
    assert not (tmp_path / "out").exists()


def whole_photo_ssim(output: np.ndarray, truth: np.ndarray) -> float:
    """Today's definition: torchmetrics' SSIM map of the whole photo, cropped to the windows inside it."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    as_tensor = [torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255 for a in (output, truth)]
    _, full = structural_similarity_index_measure(*as_tensor, data_range=1.0, return_full_image=True)
    return float(full[..., 5:-5, 5:-5].mean())


def test_strips_measure_exactly_what_the_whole_photo_gives(checkpoint: Path) -> None:
    """Case 7: evaluate works in strips now (memory bounded as predict's); cut into 7 strips of
    11 rows or taken whole, a photo gives the same numbers, and the same as the whole-photo
    formulas (torchmetrics' SSIM, predict's own rendering)."""
    from lit_colorize.evaluation import RowScores, photo_strips, score_photo

    net = module_from_checkpoint(checkpoint).net
    rgb = torch.from_numpy(color_photo(71, 45, seed=3)).permute(2, 0, 1).contiguous()
    strips = list(photo_strips(71, 45, budget=45 * 11))
    assert len(strips) == 7 and all(s.stop - s.start >= 11 for s in strips)
    assert [row for s in strips for row in range(s.top, s.bottom)] == list(range(71))
    settings = [Setting("mode_mean", 0.0), Setting("annealed_mean", 0.38)]
    measured = {}
    for budget in (45 * 11, 1 << 30):
        rows = [RowScores(net.grid_size, net.color_table.counts, torch.device("cpu")) for _ in range(3)]
        with torch.no_grad():
            cf, gray = score_photo(net, rgb, settings, None, rows, budget=budget)
        measured[budget] = (cf, gray, rows)
    (cf_strips, gray_strips, by_strips), (cf_whole, gray_whole, whole) = measured.values()
    assert cf_strips == pytest.approx(cf_whole, rel=1e-12) and gray_strips == gray_whole is False
    for a, b in zip(by_strips, whole):
        assert torch.equal(a.auc.histogram, b.auc.histogram)  # the AuC's counts: exactly
        for values_a, values_b in ((a.psnr, b.psnr), (a.ab_error, b.ab_error), (a.ssim, b.ssim), (a.cf, b.cf)):
            assert values_a == pytest.approx(values_b, rel=1e-6)

    truth = rgb.permute(1, 2, 0).numpy()
    outputs = net.colorize_photo(rgb, [0.0])  # mode_mean, as predict renders it
    assert by_strips[1].ssim[0] == pytest.approx(whole_photo_ssim(outputs[0].permute(1, 2, 0).numpy(), truth), abs=1e-6)
    assert by_strips[1].psnr[0] == pytest.approx(peak_signal_noise_ratio(truth / 255, outputs[0].permute(1, 2, 0).numpy() / 255), abs=1e-6)


@pytest.mark.slow
def test_evaluate_memory_is_bounded_like_predicts() -> None:
    """Case 7: evaluate took about 460 bytes per pixel (6.6 GB for 12 MP; 48 MP was killed at
    21.6 GB). The benchmark's quick run: a 3-megapixel photo may add at most 200 bytes a pixel
    over a 64x64 one (measured: about 155, most of it the strips' fixed ~400 MB; the
    48-megapixel row, in the README, adds about 20 a pixel and stays under 3 GB)."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.predict_memory", "--quick", "--commands", "evaluate"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split()[1]: line.split() for line in result.stdout.splitlines() if line.startswith("evaluate ")}
    small, large = float(rows["64x64"][-2]), float(rows["1500x2000"][-2])
    assert (large - small) * 2**20 / (1500 * 2000) < 200, result.stdout


def test_grid_tiles_are_bounded_for_a_long_strip(checkpoint: Path, tmp_path: Path) -> None:
    """Case 11: a 1x10000 strip made a 2.3-gigapixel grid.png (each tile 160 tall, aspect kept)."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(color_photo(2, 1000, seed=1)).save(folder / "strip.png")
    Image.fromarray(color_photo(48, 64, seed=2)).save(folder / "photo.png")
    out = tmp_path / "out"
    main(["evaluate", "--ckpt_path", str(checkpoint), "--data.inputs", f"[{folder}]", "--out", str(out),
          "--temperatures", "[0.8]", "--decodings", "mode_mean"])  # fmt: skip
    with Image.open(out / "grid.png") as grid:
        assert grid.height == 2 * GRID_TILE_HEIGHT + 4
        assert grid.width == 3 * GRID_TILE_MAX_WIDTH + 2 * 4  # the strip's row: three tiles 640 wide, 1 tall


def test_out_is_checked_before_any_work(photos: Path, checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    """Case 11: an --out that cannot be written failed only after all the work; an --out that is
    an input folder was accepted (the next run measured its grid.png as a photo)."""
    from lit_colorize import evaluation

    def no_work(*args, **kwargs):
        raise AssertionError("evaluate ran before --out was checked")

    monkeypatch.setattr(evaluation, "evaluate", no_work)
    (tmp_path / "notes.txt").write_text("mine")
    cases = {
        tmp_path / "notes.txt" / "out": f"--out {tmp_path / 'notes.txt' / 'out'} is not writable ({tmp_path / 'notes.txt'}, where",
        photos: f"--out {photos} is the input folder {photos}",
    }
    for out, expected in cases.items():
        with pytest.raises(SystemExit) as error:
            main(["evaluate", "--ckpt_path", str(checkpoint), "--data.inputs", f"[{photos}]", "--out", str(out)])
        message = str(error.value.code)
        assert expected in message and "\n" not in message, message
    assert sorted(p.name for p in photos.iterdir()) == ["p0.png", "p1.png", "p2.png"]


def test_a_photo_listed_three_times_counts_once(photos: Path, checkpoint: Path, monkeypatch) -> None:
    """Case 11: the same photo by three names (a file twice, its folder) counted three times."""
    monkeypatch.chdir(photos)
    messages: list[str] = []
    module = module_from_checkpoint(checkpoint)
    result = evaluate(module, ["p0.png", photos / "p0.png", photos], [Setting("mode_mean", 0.8)], log=messages.append)
    assert result.photos == [Path("p0.png"), photos / "p1.png", photos / "p2.png"]
    assert f"{photos / 'p0.png'} is among the inputs 3 times; counted once" in messages
    once = evaluate(module, [photos], [Setting("mode_mean", 0.8)], log=lambda m: None)
    assert result.rows[GRAY] == once.rows[GRAY] and result.rows["mode_mean T=0.8"] == once.rows["mode_mean T=0.8"]
    assert result.rows[TRUTH]["cf"] == once.rows[TRUTH]["cf"]


def test_prior_from_another_model_weighs_rebalanced_auc_by_its_prior(
    photos: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--prior_from``: models trained on different photos are read on one scale, that of the
    given checkpoint's color prior (the oracle's weights), and the report says whose prior it was."""
    module = module_from_checkpoint(checkpoint)
    grid_size = module.net.grid_size
    other = np.random.default_rng(3).integers(1, 50, grid_size**2).astype(np.float64)  # some other training mix
    result = evaluate(module, [photos], [Setting("mode_mean", 0.8)], prior=torch.from_numpy(other), log=lambda m: None)
    paths = sorted(photos.iterdir())
    truths = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    expected = oracle(truths, [gray_of(t) for t in truths], other / other.sum(), grid_size)
    assert result.rows[GRAY]["auc_rebalanced"] == pytest.approx(expected["auc_rebalanced"], abs=TOLERANCE["auc_rebalanced"])
    own = evaluate(module, [photos], [Setting("mode_mean", 0.8)], log=lambda m: None)
    assert own.rows[GRAY]["auc_rebalanced"] != pytest.approx(result.rows[GRAY]["auc_rebalanced"], abs=1e-4)
    assert own.rows[GRAY]["auc"] == pytest.approx(result.rows[GRAY]["auc"])  # only the rebalanced column moves
    with pytest.raises(ConfigError, match="same grid_size"):
        evaluate(module, [photos], prior=torch.ones(7), log=lambda m: None)

    out = tmp_path / "evaluation"
    main(["evaluate", "--ckpt_path", str(checkpoint), "--data.inputs", f"[{photos}/]", "--out", str(out),
          "--temperatures", "0.8", "--prior_from", str(checkpoint)])  # fmt: skip
    assert f"rebalanced AuC with the color prior of {checkpoint}" in capsys.readouterr().out
