"""Full-resolution colorization: working size, strip-wise rendering, the photo's own L kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.color import lab2rgb, rgb2lab

from lit_colorize.color import lab_to_rgb
from lit_colorize.fullres import MAX_WORKING_ASPECT, colorize_full_resolution, full_resolution_l, render, working_size


@pytest.mark.parametrize(
    ("size", "short_side", "multiple", "expected"),
    [
        ((3391, 6028), 128, 8, (128, 224)),  # 6028 * 128 / 3391 = 227.5 -> 224
        ((481, 321), 128, 8, (192, 128)),  # 481 * 128 / 321 = 191.8 -> 192
        ((32, 32), 32, 4, (32, 32)),
        ((20, 30), 128, 8, (128, 192)),  # small photos are enlarged to the working scale
        ((32, 128), 32, 8, (32, 128)),  # 4:1, the longest kept at the full working scale
        ((1, 1), 5, 8, (8, 8)),  # never below one multiple
    ],
)
def test_working_size_keeps_aspect_and_multiples(size, short_side, multiple, expected) -> None:
    assert working_size(*size, short_side, multiple) == expected


@pytest.mark.parametrize(
    ("size", "short_side", "multiple", "expected"),
    [
        ((1, 10000), 32, 8, (8, 512)),  # was 32 x 320,000: 5 GB and 70 s for a 30 KB PNG
        ((10000, 1), 32, 8, (512, 8)),
        ((3, 5000), 128, 16, (16, 4096)),  # was 128 x 213,328
        ((10, 1000), 32, 8, (8, 512)),  # was 32 x 3200
        ((1000, 8000), 128, 8, (88, 728)),  # 8:1 panorama: aspect kept, at a smaller scale
    ],
)
def test_working_size_bounds_the_area(size, short_side, multiple, expected) -> None:
    """The network input never exceeds MAX_WORKING_ASPECT * short_side**2 pixels, whatever the aspect."""
    height, width = working_size(*size, short_side, multiple)
    assert (height, width) == expected
    assert height * width <= MAX_WORKING_ASPECT * short_side**2
    assert height % multiple == 0 and width % multiple == 0


def test_a_one_pixel_high_photo_colorizes_within_the_bound() -> None:
    """End to end through colorize_full_resolution: a 1x10000 photo keeps its size, and the
    network sees at most 4 * 32**2 pixels (before: 32 x 320,000)."""
    rgb = torch.randint(0, 256, (3, 1, 10000), dtype=torch.uint8)
    seen = []

    def gray_predictor(l_norm, temperatures):
        seen.append(tuple(l_norm.shape))
        return [torch.zeros(1, 2, *l_norm.shape[-2:]) for _ in temperatures]

    (output,) = colorize_full_resolution(rgb, gray_predictor, [0.8], short_side=32, multiple=8)
    assert output.shape == (3, 1, 10000)
    assert seen == [(1, 1, 8, 512)]


def test_full_resolution_l_matches_skimage_in_any_strip_height() -> None:
    rgb = torch.randint(0, 256, (3, 37, 53), dtype=torch.uint8)
    expected = rgb2lab(rgb.permute(1, 2, 0).numpy())[..., 0]
    for budget in (53, 53 * 5, 10**9):  # one row per strip, five rows, the whole image
        np.testing.assert_allclose(full_resolution_l(rgb, budget).numpy(), expected, atol=2e-3)


@pytest.mark.parametrize(("full", "small"), [((97, 203), (16, 40)), ((40, 30), (48, 32)), ((333, 250), (64, 48))])
def test_render_equals_whole_image_upsampling(full, small) -> None:
    """Strips give what one bilinear F.interpolate of ab to full size, joined with L, gives."""
    generator = torch.Generator().manual_seed(0)
    lightness = torch.rand(full, generator=generator) * 100
    ab = torch.randn(2, *small, generator=generator) * 30
    reference_ab = F.interpolate(ab[None], size=full, mode="bilinear", align_corners=False)[0]
    reference = lab_to_rgb(torch.cat([lightness[None], reference_ab])).mul(255).round().to(torch.uint8)
    ours = render(lightness, ab, budget=full[1] * 7)
    difference = (ours.int() - reference.int()).abs()
    assert difference.max() <= 1  # float rounding at .5 boundaries only
    assert (difference > 0).float().mean() < 1e-3


def test_output_has_the_input_size_and_its_lightness() -> None:
    """With ab = 0 predicted, the output is exactly the photo's gray at full resolution."""
    rgb = torch.randint(0, 256, (3, 75, 131), dtype=torch.uint8)
    seen = []

    def gray_predictor(l_norm, temperatures):
        seen.append(tuple(l_norm.shape))
        return [torch.zeros(1, 2, *l_norm.shape[-2:]) for _ in temperatures]

    outputs = colorize_full_resolution(rgb, gray_predictor, [0.0, 1.0], short_side=32, multiple=8, budget=131 * 10)
    assert seen == [(1, 1, 32, 56)]
    assert len(outputs) == 2 and all(o.shape == rgb.shape and o.dtype == torch.uint8 for o in outputs)
    lab = rgb2lab(rgb.permute(1, 2, 0).numpy())
    lab[..., 1:] = 0
    expected = np.round(lab2rgb(lab) * 255).astype(int)
    assert np.abs(outputs[0].permute(1, 2, 0).numpy().astype(int) - expected).max() <= 1
