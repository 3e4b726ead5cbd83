"""Old-photo degradations of L (``lit_colorize.degrade``), each against an independent oracle:
scipy's Gaussian filter, PIL's real JPEG encoder and scipy's DCT, scikit-image's Lab for the tone,
naive loops for scratches, numpy statistics for grain and dust. Also: seeded, on the batch's
device, off by default in training, the target ab never touched, and ``evaluate --degrade``."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage.color import lab2rgb, rgb2lab

from lit_colorize.cli import main
from lit_colorize.colorizer import module_from_checkpoint
from lit_colorize.degrade import (
    BLUE,
    JPEG_LUMINANCE,
    LUMA_601,
    SEPIA,
    Degradation,
    DegradationParameters,
    photo_generator,
    scratch_coverage,
)
from lit_colorize.evaluation import GRAY, Setting, evaluate
from lit_colorize.module import ColorizationModule
from tests.conftest import requires_cuda
from tests.helpers import no_device_waits

KINDS = ("p_grain", "p_blur", "p_fade", "p_tone", "p_scratches", "p_dust", "p_jpeg")


def only(kind: str | None = None) -> Degradation:
    """Every image degraded by ``kind`` alone (None: by every kind)."""
    return Degradation(p=1.0, **{k: float(kind is None or k == kind) for k in KINDS})


def neutral(batch: int) -> DegradationParameters:
    """A draw with every kind off."""
    zeros = torch.zeros(batch)
    return DegradationParameters(
        grain=zeros, blur=zeros, black=zeros, white=torch.ones(batch), tone=torch.ones(batch, 3),
        scratches=torch.zeros(batch, 1, 5), scratch_strength=torch.zeros(batch, 1), dust=zeros, jpeg_quality=zeros,
    )  # fmt: skip


def smooth_image(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Smooth L in [0.1, 0.9] with some texture, (B, 1, H, W)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    images = [
        0.5 + 0.25 * np.sin(x / (4 + b) + rng.uniform(0, 6)) * np.cos(y / (5 + b)) + 0.1 * (x / width - 0.5) + rng.normal(0, 0.02, (height, width))
        for b in range(batch)
    ]  # fmt: skip
    return torch.tensor(np.clip(images, 0.1, 0.9), dtype=torch.float32)[:, None]


def test_deterministic_under_a_seed_and_different_between_seeds() -> None:
    l_norm = smooth_image(8, 32, 40)
    degradation = only()
    first = degradation(l_norm, torch.Generator().manual_seed(3))
    again = degradation(l_norm, torch.Generator().manual_seed(3))
    other = degradation(l_norm, torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    torch.manual_seed(5)  # the global generator, as in training
    global_first = degradation(l_norm)
    torch.manual_seed(5)
    assert torch.equal(global_first, degradation(l_norm))


def test_photo_generators_depend_on_seed_and_place_only() -> None:
    draw = [torch.rand(3, generator=photo_generator(seed, index, torch.device("cpu"))) for seed, index in [(0, 0), (0, 1), (1, 0), (0, 0)]]
    assert torch.equal(draw[0], draw[3])
    assert not torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])


def test_everything_off_leaves_l_exactly_as_it_was() -> None:
    l_norm = torch.rand(4, 1, 24, 20)
    assert torch.equal(Degradation(p=0.0)(l_norm), l_norm)
    assert torch.equal(Degradation().apply(l_norm, neutral(4)), l_norm)


def test_each_kind_is_drawn_with_its_probability_and_within_its_range() -> None:
    degradation = Degradation(p=0.5, p_grain=0.4, p_blur=0.6, p_fade=0.5, p_tone=0.5, p_scratches=0.3, p_dust=0.2, p_jpeg=0.7)
    params = degradation.sample(40000, torch.device("cpu"), torch.Generator().manual_seed(0))
    for values, chance in [(params.grain, 0.4), (params.blur, 0.6), (params.black, 0.5), (params.dust, 0.2), (params.jpeg_quality, 0.7)]:
        assert abs((values > 0).float().mean().item() - 0.5 * chance) < 0.01
    assert abs((params.scratch_strength > 0).any(dim=1).float().mean().item() - 0.5 * 0.3 * (1 - 0.5**3)) < 0.01
    grain, blur = params.grain[params.grain > 0], params.blur[params.blur > 0]
    assert 0.002 <= grain.min() and grain.max() <= 0.03 and 0.4 <= blur.min() and blur.max() <= 1.6
    quality = params.jpeg_quality[params.jpeg_quality > 0]
    assert 10 <= quality.min() and quality.max() <= 60
    toned = params.tone[(params.tone != 1).any(dim=1)]
    sepia = torch.tensor(SEPIA) - 1
    share = (toned - 1) / torch.where(toned[:, :1] > 1, sepia, torch.tensor(BLUE) - 1)  # per channel: the tone's strength
    torch.testing.assert_close(share, share[:, :1].expand_as(share))
    assert 0.5 - 1e-6 <= share.min() and share.max() <= 1 + 1e-6


def test_blur_is_scipys_gaussian_and_lowers_the_high_frequencies() -> None:
    l_norm = smooth_image(3, 40, 48) + 0.05 * torch.rand(3, 1, 40, 48)
    sigmas = torch.tensor([0.5, 1.0, 1.6])
    params = replace(neutral(3), blur=sigmas)
    blurred = Degradation().apply(l_norm, params).numpy()[:, 0]
    ratios = []
    for image, out, sigma in zip(l_norm.numpy()[:, 0], blurred, sigmas.tolist()):
        expected = gaussian_filter(image.astype(np.float64), sigma, mode="nearest", radius=5)
        np.testing.assert_allclose(out, expected, atol=1e-5)

        def high_energy(a: np.ndarray) -> float:
            spectrum = np.abs(np.fft.fft2(a - a.mean())) ** 2
            fy, fx = np.meshgrid(np.fft.fftfreq(a.shape[0]), np.fft.fftfreq(a.shape[1]), indexing="ij")
            return float(spectrum[np.hypot(fy, fx) > 0.25].sum())

        ratios.append(high_energy(out) / high_energy(image))
    assert ratios[0] < 0.75 and ratios[1] < ratios[0] and ratios[2] < ratios[1]  # less, and less for a wider blur


@pytest.mark.parametrize("level", [0.2, 0.5, 0.8])
def test_grain_variance_is_grain_times_l_times_one_minus_l(level: float) -> None:
    l_norm = torch.full((16, 1, 64, 64), level)
    factor = torch.linspace(0.005, 0.03, 16)
    out = Degradation().apply(l_norm, replace(neutral(16), grain=factor), torch.Generator().manual_seed(0))
    noise = (out - l_norm).flatten(1).numpy().astype(np.float64)
    expected = factor.numpy() * level * (1 - level)
    np.testing.assert_allclose(noise.var(axis=1), expected, rtol=0.06)  # 4096 samples: ~2% sampling error
    assert np.abs(noise.mean(axis=1)).max() < 0.004


def test_fade_compresses_the_range_to_its_bounds() -> None:
    ramp = torch.linspace(0, 1, 101).view(1, 1, 1, 101).expand(2, 1, 3, 101).contiguous()
    black, white = torch.tensor([0.1, 0.25]), torch.tensor([0.9, 0.75])
    out = Degradation().apply(ramp, replace(neutral(2), black=black, white=white)).numpy()
    for image, lo, hi in zip(out[:, 0], black.tolist(), white.tolist()):
        assert image.min() == pytest.approx(lo, abs=1e-6) and image.max() == pytest.approx(hi, abs=1e-6)
        np.testing.assert_allclose(image[0], lo + (hi - lo) * np.linspace(0, 1, 101), atol=1e-6)


def gray_srgb_oracle(l_norm: np.ndarray) -> np.ndarray:
    """scikit-image's Lab -> sRGB of the neutral gray of each L."""
    lab = np.stack([l_norm * 100, np.zeros_like(l_norm), np.zeros_like(l_norm)], axis=-1)
    return lab2rgb(lab)[..., 1]


def l_oracle(srgb: np.ndarray) -> np.ndarray:
    return rgb2lab(np.repeat(srgb[..., None], 3, axis=-1))[..., 0] / 100


def test_tone_taken_to_gray_is_the_luma_of_the_clipped_toned_gray() -> None:
    ramp = torch.linspace(0, 1, 201).view(1, 1, 1, 201).expand(3, 1, 1, 201).contiguous()
    tones = torch.tensor([SEPIA, BLUE, [1.2, 1.0, 0.8]])
    out = Degradation().apply(ramp, replace(neutral(3), tone=tones)).numpy()[:, 0, 0]
    gray = gray_srgb_oracle(np.linspace(0, 1, 201))
    for row, tone in zip(out, tones.numpy()):
        toned = np.clip(gray[:, None] * tone[None, :], 0, 1)
        expected = l_oracle(toned @ np.array(LUMA_601))
        np.testing.assert_allclose(row, expected, atol=2e-4)
    assert (out[0, 40:160] > np.linspace(0, 1, 201)[40:160] + 0.02).all()  # sepia brightens the midtones
    assert (out[1, 20:] < np.linspace(0, 1, 201)[20:] - 0.02).all()  # the blue tone darkens
    assert np.all(np.diff(out, axis=1) >= -1e-6)  # a tone curve: the order of lightness is kept


def jpeg_oracle(levels: np.ndarray, quality: int) -> np.ndarray:
    """Gray levels 0..255 (H, W), H and W multiples of 8, through scipy's DCT and the IJG table."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    table = np.clip(np.floor((np.array(JPEG_LUMINANCE) * scale + 50) / 100), 1, 255)
    out = np.empty_like(levels, dtype=np.float64)
    for top in range(0, levels.shape[0], 8):
        for left in range(0, levels.shape[1], 8):
            block = levels[top : top + 8, left : left + 8] - 128.0
            coefficients = np.round(scipy.fft.dctn(block, norm="ortho") / table) * table
            out[top : top + 8, left : left + 8] = scipy.fft.idctn(coefficients, norm="ortho") + 128.0
    return np.clip(out, 0, 255)


def block_edges(levels: np.ndarray) -> tuple[float, float]:
    """Mean |horizontal step| across 8x8 block boundaries and inside blocks."""
    steps = np.abs(np.diff(levels, axis=1))
    across = steps[:, 7::8]
    inside = np.delete(steps, np.s_[7::8], axis=1)
    return float(across.mean()), float(inside.mean())


@pytest.mark.parametrize(("quality", "blockiness"), [(10, 2.0), (30, 1.4), (60, 1.1)])
def test_jpeg_is_the_dct_quantization_of_real_jpeg_and_makes_blocks(quality: int, blockiness: float) -> None:
    y, x = np.mgrid[0:48, 0:64]  # a smooth sky-like gradient, where blocks show
    l_norm = torch.tensor(0.5 + 0.3 * np.sin(x / 9) * np.cos(y / 11) + 0.1 * x / 64, dtype=torch.float32)[None, None]
    out = Degradation().apply(l_norm, replace(neutral(1), jpeg_quality=torch.tensor([float(quality)])))
    out_levels = (gray_srgb_oracle(out.numpy()[0, 0].astype(np.float64)) * 255)
    in_levels = gray_srgb_oracle(l_norm.numpy()[0, 0].astype(np.float64)) * 255
    np.testing.assert_allclose(out_levels, jpeg_oracle(in_levels, quality), atol=0.02)
    # and PIL's libjpeg (integer DCT, uint8 in and out) gives nearly the same picture
    buffer = io.BytesIO()
    Image.fromarray(in_levels.round().astype(np.uint8), "L").save(buffer, "JPEG", quality=quality)
    real = np.asarray(Image.open(buffer), dtype=np.float64)
    off_real = np.abs(out_levels - real).mean()  # libjpeg rounds to uint8 on the way in and out: 0.25 levels alone
    assert off_real < 0.5 and off_real < 0.5 * np.abs(out_levels - in_levels).mean()
    across, inside = block_edges(out_levels)
    clean_across, clean_inside = block_edges(in_levels)
    assert across / inside > blockiness * clean_across / clean_inside  # steps at block boundaries, more at low quality


def test_jpeg_pads_odd_sizes_and_crops_back() -> None:
    l_norm = smooth_image(2, 21, 30)
    out = Degradation().apply(l_norm, replace(neutral(2), jpeg_quality=torch.tensor([20.0, 50.0])))
    assert out.shape == l_norm.shape and (out - l_norm).abs().mean() > 1e-3


def test_scratch_coverage_matches_a_naive_loop() -> None:
    height, width = 12, 16
    scratches = torch.tensor([[[0.3, 0.6, 0.0, 0.5, 1.0], [0.5, 0.5, 1.1, 0.3, 0.0]]])
    coverage = scratch_coverage(scratches, height, width).numpy()[0]
    for s, (cx, cy, angle, half, _) in enumerate(scratches[0].tolist()):
        for y in range(height):
            for x in range(width):
                px, py = x + 0.5 - cx * width, y + 0.5 - cy * height
                distance = abs(px * np.cos(angle) - py * np.sin(angle))
                assert coverage[s, y, x] == pytest.approx(min(1.0, max(0.0, half + 0.5 - distance)), abs=1e-5)


def test_a_scratch_is_a_thin_line_of_its_level() -> None:
    l_norm = torch.full((2, 1, 20, 20), 0.5)
    vertical_at_column_7 = torch.tensor([[[7.5 / 20, 0.5, 0.0, 0.5, 1.0]], [[7.5 / 20, 0.5, 0.0, 0.5, 0.0]]])
    params = replace(neutral(2), scratches=vertical_at_column_7, scratch_strength=torch.tensor([[1.0], [0.6]]))
    out = Degradation().apply(l_norm, params)
    assert torch.equal(out[0, 0, :, 7], torch.ones(20)) and torch.allclose(out[1, 0, :, 7], torch.full((20,), 0.2))
    rest = torch.cat([out[..., :7], out[..., 8:]], dim=-1)
    assert torch.equal(rest, torch.full_like(rest, 0.5))


def test_dust_specks_cover_their_density_in_black_and_white() -> None:
    l_norm = torch.full((4, 1, 128, 128), 0.5)
    density = torch.tensor([0.0, 0.002, 0.01, 0.04])
    out = Degradation().apply(l_norm, replace(neutral(4), dust=density), torch.Generator().manual_seed(1))
    changed = out != 0.5
    np.testing.assert_allclose(changed.flatten(1).float().mean(1).numpy(), density.numpy(), rtol=0.15, atol=1e-6)
    assert torch.all((out[changed] == 0) | (out[changed] == 1))
    assert 0.4 < out[changed].mean() < 0.6  # bright and dark specks alike


def test_the_degradation_runs_on_the_batch_device() -> None:
    l_norm = torch.rand(2, 1, 16, 16)
    params = Degradation().sample(2, l_norm.device)
    assert all(getattr(params, name).device == l_norm.device for name in vars(params))
    assert only()(l_norm).device == l_norm.device


@requires_cuda
def test_on_cuda_without_a_device_wait() -> None:
    l_norm = torch.rand(8, 1, 64, 64, device="cuda")
    degradation = only().cuda()
    generator = torch.Generator(device="cuda").manual_seed(0)
    with no_device_waits():
        out = degradation(l_norm, generator)
    assert out.device.type == "cuda"
    on_cpu = only().apply(l_norm.cpu(), degradation.sample(8, l_norm.device, torch.Generator(device="cuda").manual_seed(1)).to("cpu"))
    assert on_cpu.shape == out.shape


def test_training_degrades_only_the_l_input_and_is_off_by_default() -> None:
    images = (smooth_image(6, 32, 32).expand(-1, 3, -1, -1) * torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1) * 255).to(torch.uint8)
    plain = ColorizationModule(widths=(8, 16, 32), output_stride=4)
    assert plain.hparams.degrade_input is False
    torch.manual_seed(0)
    clean = plain.prepare_training_batch(images, None)
    degrading = ColorizationModule(widths=(8, 16, 32), output_stride=4, degrade_input=True)
    torch.manual_seed(0)
    degraded = degrading.prepare_training_batch(images, None)
    assert torch.equal(clean["l"], plain.prepare_batch(images)["l"])
    for key in ("ab", "target_ab", "bins", "rgb"):
        assert torch.equal(degraded[key], clean[key]), key
    assert not torch.equal(degraded["l"], clean["l"])


@pytest.fixture
def noise_photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_evaluate_degrade_is_seeded_and_changes_only_the_predictions(noise_photos: Path, tmp_path: Path, checkpoint: Path) -> None:
    module = module_from_checkpoint(checkpoint)
    # The annealed mean reads every logit: the tiny ToyShapes model's argmax can be one bin on noise, degraded or not.
    settings = [Setting("annealed_mean", 1.0)]
    quiet = {"log": lambda message: None, "skip_dir": tmp_path / "out"}
    clean = evaluate(module, [noise_photos], settings, **quiet)
    first = evaluate(module, [noise_photos], settings, degrade_seed=7, **quiet)
    again = evaluate(module, [noise_photos], settings, degrade_seed=7, **quiet)
    other = evaluate(module, [noise_photos], settings, degrade_seed=8, **quiet)
    np.testing.assert_equal(first.rows, again.rows)
    assert first.rows[GRAY] == clean.rows[GRAY]  # the output keeps the photo's own L
    name = settings[0].name
    assert first.ab_errors[name] != clean.ab_errors[name] and first.ab_errors[name] != other.ab_errors[name]


def test_the_command_degrades_with_its_seed_and_says_so(noise_photos: Path, tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "evaluation"
    main(["evaluate", "--ckpt_path", str(checkpoint), "--data.inputs", f"[{noise_photos}/]", "--out", str(out),
          "--temperatures", "[0]", "--decodings", "mode_mean", "--degrade", "7"])  # fmt: skip
    report = (out / "metrics.md").read_text(encoding="utf-8")
    assert "the network's input degraded like an old photo (seed 7)" in report
    expected = evaluate(module_from_checkpoint(checkpoint), [noise_photos], [Setting("mode_mean", 0.0)], log=lambda m: None, degrade_seed=7)
    assert f"{expected.rows['mode_mean T=0']['auc']:.4f}" in report
