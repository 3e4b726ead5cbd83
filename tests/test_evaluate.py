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
