"""Guided chroma upsampling (lit_colorize.guided, fullres's guided rendering) against a naive
numpy loop oracle, on a synthetic step edge, and strip by strip against one piece."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lit_colorize.color import lab_to_rgb
from lit_colorize.errors import ConfigError
from lit_colorize.fullres import render, widen_ab
from lit_colorize.guided import DEFAULT_EPS, DEFAULT_RADIUS, guided_coefficients, guided_upsample, low_resolution_guide


def naive_coefficients(guide: np.ndarray, ab: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """The filter's coefficients by explicit loops: per window (reflected border) the slope and
    offset of ab against L, with the edge weight from the photo's mean window variance, then
    each pixel's mean of them over the windows that hold it. (4, h, w): mean a, then mean b."""
    h, w = guide.shape
    size = 2 * radius + 1
    pad = lambda x: np.pad(x, radius, mode="reflect")  # noqa: E731
    g = pad(guide.astype(np.float64))
    channels = [pad(ab[c].astype(np.float64)) for c in range(2)]
    variance, mean_l = np.zeros((h, w)), np.zeros((h, w))
    covariance, mean_ab = np.zeros((2, h, w)), np.zeros((2, h, w))
    for y in range(h):
        for x in range(w):
            window = g[y : y + size, x : x + size]
            variance[y, x], mean_l[y, x] = window.var(), window.mean()
            for c in range(2):
                other = channels[c][y : y + size, x : x + size]
                covariance[c, y, x] = (window * other).mean() - window.mean() * other.mean()
                mean_ab[c, y, x] = other.mean()
    weight = (variance + 1.0) / (variance + 1.0).mean()
    slope = covariance / (variance + eps / weight)[None]
    offset = mean_ab - slope * mean_l[None]
    out = np.zeros((4, h, w))
    for c, plane in enumerate([*slope, *offset]):
        padded = pad(plane)
        for y in range(h):
            for x in range(w):
                out[c, y, x] = padded[y : y + size, x : x + size].mean()
    return out


def naive_bilinear(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resizing with pixel centres aligned (align_corners=False), by loops."""
    _, h, w = maps.shape

    def source(i: int, size_in: int, size_out: int) -> tuple[int, int, float]:
        s = max((i + 0.5) * size_in / size_out - 0.5, 0.0)
        low = min(int(np.floor(s)), size_in - 1)
        return low, min(low + 1, size_in - 1), s - low

    out = np.zeros((maps.shape[0], height, width))
    for y in range(height):
        y0, y1, wy = source(y, h, height)
        for x in range(width):
            x0, x1, wx = source(x, w, width)
            top = maps[:, y0, x0] * (1 - wx) + maps[:, y0, x1] * wx
            bottom = maps[:, y1, x0] * (1 - wx) + maps[:, y1, x1] * wx
            out[:, y, x] = top * (1 - wy) + bottom * wy
    return out


def test_coefficients_and_upsampling_match_the_naive_oracle() -> None:
    generator = torch.Generator().manual_seed(0)
    lightness = torch.rand(32, 36, generator=generator) * 100
    ab_small = torch.randn(2, 8, 9, generator=generator) * 30
    guide = low_resolution_guide(lightness, (8, 9))  # the guide is torch's antialiased resize, given to both
    for radius, eps in ((DEFAULT_RADIUS, DEFAULT_EPS), (1, 100.0)):
        coefficients = guided_coefficients(guide, ab_small, radius, eps).numpy()
        oracle = naive_coefficients(guide.numpy(), ab_small.numpy(), radius, eps)
        np.testing.assert_allclose(coefficients, oracle, atol=1e-4, rtol=1e-4)
    maps = naive_bilinear(naive_coefficients(guide.numpy(), ab_small.numpy(), DEFAULT_RADIUS, DEFAULT_EPS), 32, 36)
    expected = maps[:2] * lightness.double().numpy()[None] + maps[2:]
    np.testing.assert_allclose(guided_upsample(lightness, ab_small).numpy(), expected, atol=1e-3, rtol=1e-5)


def step_edge(factor: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two flat colors split by an L edge at column 61 (inside a low-resolution pixel):
    (L (64, 128), true ab, ab area-averaged down by ``factor``, distance of each column to the edge)."""
    edge = 61
    lightness = torch.full((64, 128), 30.0)
    lightness[:, edge:] = 70.0
    ab = torch.empty(2, 64, 128)
    ab[:, :, :edge] = torch.tensor([40.0, -20.0])[:, None, None]
    ab[:, :, edge:] = torch.tensor([-30.0, 50.0])[:, None, None]
    distance = (torch.arange(128) - edge + 0.5).abs()
    return lightness, ab, F.avg_pool2d(ab[None], factor)[0], distance


def test_a_step_edge_stays_sharp_where_bilinear_smears_it() -> None:
    lightness, ab, small, distance = step_edge(factor=8)
    guided_error = torch.linalg.vector_norm(guided_upsample(lightness, small) - ab, dim=0).amax(0)
    bilinear = F.interpolate(small[None], size=(64, 128), mode="bilinear", align_corners=False)[0]
    bilinear_error = torch.linalg.vector_norm(bilinear - ab, dim=0).amax(0)
    assert float(torch.cat([distance[guided_error > 5], torch.zeros(1)]).max()) <= 2  # confined to the edge's own pixels
    assert float(distance[bilinear_error > 5].max()) >= 4  # bilinear: over half the factor and more
    assert float(bilinear_error.max()) > 40


def window_means(planes: np.ndarray, radius: int) -> np.ndarray:
    """Each pixel's mean over its (2r+1)^2 window, reflected at the borders, by loops."""
    size = 2 * radius + 1
    padded = np.pad(planes, ((0, 0), (radius, radius), (radius, radius)), mode="reflect")
    _, h, w = planes.shape
    return np.stack([[[padded[c, y : y + size, x : x + size].mean() for x in range(w)] for y in range(h)] for c in range(len(planes))])


def test_flat_lightness_gives_the_bilinear_window_mean() -> None:
    """No edge to follow: a = 0, b = the window mean of the prediction, averaged once more over
    the windows (the filter's smoothing), then resized bilinearly."""
    lightness = torch.full((40, 56), 55.0)
    small = torch.randn(2, 5, 7, generator=torch.Generator().manual_seed(1)) * 20
    smoothed = window_means(window_means(small.double().numpy(), DEFAULT_RADIUS), DEFAULT_RADIUS)
    expected = F.interpolate(torch.from_numpy(smoothed).float()[None], size=(40, 56), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(guided_upsample(lightness, small), expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize("upsampling", ["bilinear", "guided"])
def test_strips_give_the_pixels_of_one_piece(upsampling: str) -> None:
    generator = torch.Generator().manual_seed(2)
    lightness = (torch.rand(37, 53, generator=generator) * 100).round()
    small = torch.randn(2, 5, 7, generator=generator) * 25
    whole = render(lightness, small, budget=10**9, upsampling=upsampling)
    for budget in (53, 53 * 7, 1000):
        assert torch.equal(render(lightness, small, budget=budget, upsampling=upsampling), whole)
    ab = guided_upsample(lightness, small) if upsampling == "guided" else F.interpolate(small[None], size=(37, 53), mode="bilinear")[0]
    reference = lab_to_rgb(torch.cat([lightness[None], ab])).mul(255).round().to(torch.uint8)
    assert (whole.int() - reference.int()).abs().max() <= 1  # separable in strips vs 2-D in one piece: float rounding


def test_bad_settings_are_named() -> None:
    with pytest.raises(ConfigError, match="upsampling must be guided .* or bilinear .*, got .bicubic."):
        render(torch.zeros(4, 4), torch.zeros(2, 1, 1), upsampling="bicubic")
    with pytest.raises(ValueError, match="full-resolution L"):
        widen_ab(torch.zeros(2, 2, 2), 8, upsampling="guided")


@pytest.mark.slow
def test_on_real_photos_the_models_colors_come_closer_to_the_truth_guided() -> None:
    """benchmarks/upsampling.py --model's protocol on photos the shipped model never trained on
    (BSDS500 test: checked here, never tuned on): its predicted ab, upsampled guided, gives
    photos nearer the truth than bilinear does (ab RMSE and median PSNR), because the filter
    smooths the blotches of a wrong prediction and keeps the photo's edges."""
    from benchmarks.common import SHARED_DATA
    from benchmarks.upsampling import measure, methods, model_prediction
    from lit_colorize.files import image_files

    folder = SHARED_DATA / "photos" / "bsds500" / "test"
    if not folder.is_dir():
        pytest.skip(f"needs the shared photos ({folder}), beside the checkout as ../shared")
    upsamplers = {name: fn for name, fn in methods(grid=False).items() if not name.startswith("joint")}
    with torch.no_grad():
        results = measure(image_files(folder)[:12], model_prediction(64), upsamplers)
    guided, bilinear = results[f"guided r{DEFAULT_RADIUS} eps{DEFAULT_EPS:g}"], results["bilinear"]
    assert guided[0] < bilinear[0]  # ab RMSE
    assert guided[3] > bilinear[3]  # median PSNR of the rendered photos


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 1)])
def test_maps_too_small_for_a_window_fall_back_to_bilinear(size: tuple[int, int]) -> None:
    """A 1-pixel-high working map (a tiny video frame) has no window to fit: bilinear, not a crash."""
    lightness = torch.linspace(0, 100, 8 * size[0] * 8 * size[1]).reshape(8 * size[0], 8 * size[1])
    ab_small = torch.randn(2, *size) * 20
    guided = guided_upsample(lightness, ab_small)
    bilinear = F.interpolate(ab_small[None], size=lightness.shape, mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(guided, bilinear)


def test_a_map_at_the_photos_size_is_kept_as_predicted() -> None:
    """Output stride 1 at the photo's own size: nothing to upsample, so the photo gets exactly
    the predicted ab under either upsampling (as the ONNX example in the README renders it)."""
    generator = torch.Generator().manual_seed(0)
    lightness = torch.rand(24, 36, generator=generator) * 100
    ab = torch.randn(2, 24, 36, generator=generator) * 30
    torch.testing.assert_close(guided_upsample(lightness, ab), ab)
    bilinear, guided = (render(lightness, ab, upsampling=u) for u in ("bilinear", "guided"))
    assert torch.equal(guided, bilinear)
    expected = lab_to_rgb(torch.cat([lightness[None], ab])).mul(255).round().to(torch.uint8)
    assert (guided.int() - expected.int()).abs().max() <= 1
