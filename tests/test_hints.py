"""Simulated colour hints against independent oracles: the geometric law of the count, patch
means and last-writer-wins painting recomputed naively in numpy, a numpy model of Zhang et al.'s
clipped-normal placement, and hand-built masks for explicit hints."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

from lit_colorize.errors import ConfigError
from lit_colorize.hints import (
    MAX_CLIPPED_MASS,
    SWEEP_COUNTS,
    HintSampling,
    Patches,
    draw_patches,
    place_hints,
    random_hints_from_truth,
    sample_hints,
    smallest_cap,
)
from tests.conftest import requires_cuda
from tests.helpers import HostReadProbe, no_device_waits

GRAY = 128 / 255


def _generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _truth(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.empty(batch, 2, height, width).uniform_(-100, 100, generator=_generator(seed))


def _naive_hints(ab: np.ndarray, patches: Patches) -> tuple[np.ndarray, np.ndarray]:
    """Paint patch by patch in slot order (later ones overwrite), each with its mean in float64."""
    batch, _, height, width = ab.shape
    hint = np.zeros((batch, 2, height, width))
    mask = np.zeros((batch, 1, height, width))
    fields = [field.cpu().numpy() for field in patches]
    for b in range(batch):
        for top, left, rows, cols, active in zip(*(field[b] for field in fields)):
            if not active:
                continue
            ys, xs = slice(top, top + rows), slice(left, left + cols)
            hint[b, :, ys, xs] = (ab[b, :, ys, xs].mean(axis=(1, 2))[:, None, None] + 128) / 255
            mask[b, :, ys, xs] = 1.0
    return hint, mask


def _counts(sampling: HintSampling, batch: int, seed: int = 0) -> np.ndarray:
    return draw_patches(batch, 8, 8, sampling, generator=_generator(seed)).active.sum(1).numpy()


@pytest.mark.parametrize(
    ("p", "cap", "share"),
    [(1 / 8, 128, 0.0), (1 / 8, 128, 0.3), (0.5, 10, 0.0)],
    ids=["zhang", "extra-no-hint-share", "small-cap"],
)
def test_hint_counts_follow_the_geometric_law_with_the_no_hint_share_and_the_cap(
    p: float, cap: int, share: float
) -> None:
    images = 20000
    counts = _counts(HintSampling(stop_probability=p, max_hints=cap, no_hint_share=share), images)
    n = np.arange(cap + 1)
    law = (1 - share) * (1 - p) ** n * p
    law[0] += share
    law[cap] = (1 - share) * (1 - p) ** cap  # everything from the cap on counts as the cap
    assert math.isclose(law.sum(), 1.0)
    observed = np.bincount(counts, minlength=cap + 1)
    assert len(observed) == cap + 1, "more hints than the cap"
    assert np.abs(observed / images - law).max() < 0.01
    assert abs(observed[0] / images - (share + (1 - share) * p)) < 0.01
    # chi-square over the bins expecting 5 or more, the rest pooled into one
    expected = law * images
    keep = expected >= 5
    pooled_observed = np.append(observed[keep], observed[~keep].sum())
    pooled_expected = np.append(expected[keep], expected[~keep].sum())
    if pooled_expected[-1] < 5:
        pooled_observed[-2] += pooled_observed[-1]
        pooled_expected[-2] += pooled_expected[-1]
        pooled_observed, pooled_expected = pooled_observed[:-1], pooled_expected[:-1]
    assert stats.chisquare(pooled_observed, pooled_expected).pvalue > 1e-3
    if cap == 10:  # the cap collects the law's tail: 0.5^10, about 20 images in 20000
        assert abs(observed[cap] - expected[cap]) < 4 * math.sqrt(expected[cap])


def test_stop_probability_one_is_the_automatic_stage_and_share_one_gives_no_hint() -> None:
    assert _counts(HintSampling(stop_probability=1.0, max_hints=1), 500).max() == 0
    assert _counts(HintSampling(no_hint_share=1.0), 500).max() == 0
    hint, mask = sample_hints(_truth(4, 16, 16), HintSampling(no_hint_share=1.0), _generator(0))
    assert not hint.any() and not mask.any()


def test_the_default_cap_cuts_off_a_negligible_tail() -> None:
    needed = smallest_cap(1 / 8)
    assert (7 / 8) ** (needed + 1) <= MAX_CLIPPED_MASS < (7 / 8) ** needed
    assert HintSampling().max_hints >= needed
    assert (7 / 8) ** (HintSampling().max_hints + 1) < 1e-7


@pytest.mark.parametrize("location", ["normal", "uniform"])
def test_patches_lie_inside_the_image_with_sizes_drawn_evenly_from_the_set(location: str) -> None:
    sizes = (1, 3, 4, 9)
    sampling = HintSampling(patch_sizes=sizes, location=location, stop_probability=0.2)
    patches = draw_patches(3000, 12, 20, sampling, generator=_generator(1))
    active = patches.active
    top, left, rows, cols = (field[active] for field in patches[:4])
    assert active.sum() > 3000
    assert torch.equal(rows, cols) and set(rows.unique().tolist()) == set(sizes)
    assert (top >= 0).all() and (left >= 0).all() and (top + rows <= 12).all() and (left + cols <= 20).all()
    shares = torch.stack([(rows == size).float().mean() for size in sizes])
    assert (shares - 0.25).abs().max() < 0.02
    assert (top == 12 - rows).any() and (left == 0).any(), "the borders are reachable"


def test_patches_larger_than_the_image_are_clipped_to_it() -> None:
    sampling = HintSampling(patch_sizes=(2, 9), stop_probability=0.2)
    patches = draw_patches(500, 4, 6, sampling, generator=_generator(2))
    active = patches.active
    top, left, rows, cols = (field[active] for field in patches[:4])
    large = rows != 2
    assert large.any() and (~large).any()
    assert (rows[large] == 4).all() and (cols[large] == 6).all()
    assert (top[large] == 0).all() and (left[large] == 0).all()
    assert (top + rows <= 4).all() and (left + cols <= 6).all()


@pytest.mark.parametrize(("height", "width"), [(13, 17), (5, 3)], ids=["image", "smaller-than-patches"])
def test_each_hint_is_the_mean_of_the_truth_over_its_patch_and_later_patches_overwrite(height: int, width: int) -> None:
    ab = _truth(24, height, width, seed=3)
    sampling = HintSampling(stop_probability=0.25, max_hints=32)
    patches = draw_patches(24, height, width, sampling, generator=_generator(4))
    hint, mask = sample_hints(ab, sampling, _generator(4))  # the same draws, then revealed
    expected_hint, expected_mask = _naive_hints(ab.double().numpy(), patches)
    assert hint.shape == (24, 2, height, width) and mask.shape == (24, 1, height, width)
    assert hint.dtype == mask.dtype == torch.float32
    np.testing.assert_array_equal(mask.numpy(), expected_mask)
    np.testing.assert_allclose(hint.numpy(), expected_hint, rtol=0, atol=1e-6)
    # the overwrite rule was exercised: some pixel lies in two patches with different means
    first_only = Patches(*patches[:4], patches.active & (torch.arange(32) == 0))
    first_hint, _ = _naive_hints(ab.double().numpy(), first_only)
    both = (first_hint[:, :1] > 0) & (expected_hint[:, :1] != first_hint[:, :1])
    assert both.any()


def test_the_mask_marks_exactly_the_hinted_pixels_and_a_gray_hint_differs_from_none() -> None:
    gray = torch.zeros(8, 2, 24, 24)
    hint, mask = random_hints_from_truth(gray, count=3, patch=2, generator=_generator(5))
    hinted = mask[:, 0] == 1
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert hinted.flatten(1).sum(1).ge(4).all() and hinted.flatten(1).sum(1).le(12).all()
    assert torch.allclose(hint.permute(1, 0, 2, 3)[:, hinted], torch.tensor(GRAY))
    assert (hint.permute(1, 0, 2, 3)[:, ~hinted] == 0).all()


def test_random_hints_from_truth_reveals_exactly_count_patches_of_the_given_size() -> None:
    ab = _truth(6, 32, 40, seed=6)
    hint, mask = random_hints_from_truth(ab, count=5, patch=6, generator=_generator(7))
    sampling = HintSampling(patch_sizes=(6,), location="normal", stop_probability=1.0, max_hints=1)
    patches = draw_patches(6, 32, 40, sampling, count=5, generator=_generator(7))
    assert patches.active.shape == (6, 5) and patches.active.all()
    assert (patches.height == 6).all() and (patches.width == 6).all()
    expected_hint, expected_mask = _naive_hints(ab.double().numpy(), patches)
    np.testing.assert_array_equal(mask.numpy(), expected_mask)
    np.testing.assert_allclose(hint.numpy(), expected_hint, rtol=0, atol=1e-6)
    none_hint, none_mask = random_hints_from_truth(ab, count=0)
    assert not none_hint.any() and not none_mask.any() and none_hint.shape == ab.shape


def test_the_sweep_counts_are_those_of_test_sweep() -> None:
    counts = np.round(10 ** np.arange(-0.1, 2.8, 0.1))
    counts[0] = 0
    assert SWEEP_COUNTS == tuple(np.unique(counts.astype(int)).tolist())


def test_normal_placement_gathers_around_the_centre_as_zhangs_clipped_normal_and_uniform_is_flat() -> None:
    images, size = 40000, 64
    tops = {
        location: draw_patches(
            images, size, size, HintSampling(patch_sizes=(1,), location=location), count=1, generator=_generator(8)
        ).top[:, 0].numpy()
        for location in ("normal", "uniform")
    }
    # Zhang's rule in numpy: int(clip(normal((H - P + 1) / 2, (H - P + 1) / 4), 0, H - P))
    oracle = np.clip(np.random.default_rng(0).normal(size / 2, size / 4, images), 0, size - 1).astype(int)
    assert abs(tops["normal"].mean() - oracle.mean()) < 0.3
    assert abs(tops["normal"].std() / oracle.std() - 1) < 0.02
    assert abs((tops["normal"] == 0).mean() - (oracle == 0).mean()) < 0.005  # the clip's pile at the border
    central = {location: ((top >= size / 4) & (top < 3 * size / 4)).mean() for location, top in tops.items()}
    assert central["normal"] > 0.64 and abs(central["uniform"] - 0.5) < 0.01
    frequencies = np.bincount(tops["uniform"], minlength=size)
    assert len(frequencies) == size
    assert stats.chisquare(frequencies).pvalue > 1e-3


def test_the_same_generator_state_gives_the_same_hints_and_another_seed_others() -> None:
    ab = _truth(16, 20, 20)
    sampling = HintSampling()
    first = sample_hints(ab, sampling, _generator(9))
    again = sample_hints(ab, sampling, _generator(9))
    other = sample_hints(ab, sampling, _generator(10))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[1], other[1])


def test_sampling_reads_nothing_on_the_host() -> None:
    ab = _truth(4, 16, 16)
    probe = HostReadProbe()
    probe.start()
    try:
        sample_hints(ab, HintSampling(), _generator(11))
        random_hints_from_truth(ab, count=7, generator=_generator(11))
    finally:
        probe.stop()
    assert probe.reads == []


def test_float64_truth_gives_float64_hints() -> None:
    hint, mask = sample_hints(_truth(2, 8, 8).double(), HintSampling(), _generator(12))
    assert hint.dtype == mask.dtype == torch.float64


def test_place_hints_builds_patches_centred_on_the_clicks_clipped_and_overwritten_by_hand() -> None:
    hints = [
        (3.0, 4.0, 10.0, -20.0, 3),  # rows 2..4, columns 3..5
        (0.0, 0.0, 50.0, 50.0, 4),  # rows -2..1 and columns -2..1, clipped to 0..1
        (6.4, 7.6, -5.0, 5.0, 1),  # rounds to pixel (6, 8), the bottom-right corner
        (5.0, 2.0, 30.0, 0.0, 2),  # even side: rows 4..5, columns 1..2
        (3.0, 4.0, 0.0, 0.0, 1),  # a gray click on the first patch's centre overwrites it
    ]
    expected_ab = np.zeros((2, 7, 9))
    expected_mask = np.zeros((1, 7, 9))
    for (rows, cols), ab in [
        ((slice(2, 5), slice(3, 6)), (10, -20)),
        ((slice(0, 2), slice(0, 2)), (50, 50)),
        ((slice(6, 7), slice(8, 9)), (-5, 5)),
        ((slice(4, 6), slice(1, 3)), (30, 0)),
        ((slice(3, 4), slice(4, 5)), (0, 0)),
    ]:
        expected_ab[:, rows, cols] = (np.array(ab)[:, None, None] + 128) / 255
        expected_mask[:, rows, cols] = 1
    for given in (hints, torch.tensor(hints)):
        hint, mask = place_hints(7, 9, given)
        assert hint.shape == (1, 2, 7, 9) and mask.shape == (1, 1, 7, 9)
        np.testing.assert_array_equal(mask[0].numpy(), expected_mask)
        np.testing.assert_allclose(hint[0].numpy(), expected_ab, rtol=0, atol=1e-6)
    assert hint[0, :, 3, 4].tolist() == pytest.approx([GRAY, GRAY]) and mask[0, 0, 3, 4] == 1
    empty_hint, empty_mask = place_hints(7, 9, [])
    assert not empty_hint.any() and not empty_mask.any() and empty_hint.shape == (1, 2, 7, 9)


@pytest.mark.parametrize(
    "hints",
    [
        [(-0.6, 2.0, 0.0, 0.0, 1)],  # rounds to row -1
        [(3.0, 9.0, 0.0, 0.0, 1)],  # column 9 of a 9 wide image
        [(3.0, 4.0, 0.0, 0.0, 0)],
        [(3.0, 4.0, 0.0, 0.0, 2.5)],
        [(3.0, 4.0, float("nan"), 0.0, 1)],
        [(3.0, 4.0, 0.0, 0.0)],
    ],
    ids=["above", "right-of", "size-0", "fractional-size", "nan", "four-values"],
)
def test_place_hints_refuses_hints_it_cannot_place(hints: list[tuple[float, ...]]) -> None:
    with pytest.raises(ConfigError):
        place_hints(7, 9, hints)


def test_a_click_just_inside_the_border_is_placed() -> None:
    _, mask = place_hints(7, 9, [(-0.4, 8.4, 0.0, 0.0, 1)])
    assert mask[0, 0, 0, 8] == 1 and mask.sum() == 1


@pytest.mark.parametrize(
    "options",
    [
        {"stop_probability": 0.0},
        {"stop_probability": 1.5},
        {"stop_probability": float("nan")},
        {"stop_probability": True},
        {"max_hints": 0},
        {"max_hints": 10},  # cuts off (7/8)^11, a quarter of the law
        {"max_hints": 64.5},
        {"patch_sizes": ()},
        {"patch_sizes": (0, 3)},
        {"patch_sizes": (33,)},
        {"patch_sizes": (3, 3)},
        {"patch_sizes": (2.5,)},
        {"patch_sizes": "3"},
        {"no_hint_share": -0.1},
        {"no_hint_share": 1.1},
        {"location": "center"},
    ],
)
def test_bad_settings_raise_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        HintSampling(**options)


def test_a_list_of_patch_sizes_from_a_config_file_is_accepted() -> None:
    assert HintSampling(patch_sizes=[1, 5]).patch_sizes == (1, 5)  # type: ignore[arg-type]


def test_bad_arguments_of_the_functions() -> None:
    with pytest.raises(ConfigError):
        random_hints_from_truth(_truth(1, 8, 8), count=2, patch=0)
    with pytest.raises(ValueError):
        random_hints_from_truth(_truth(1, 8, 8), count=-1)
    with pytest.raises(ValueError):
        sample_hints(torch.zeros(1, 3, 8, 8), HintSampling())


@requires_cuda
def test_hints_are_drawn_on_the_gpu_without_waiting_for_it_and_match_the_naive_oracle() -> None:
    ab = _truth(8, 40, 48).cuda()
    sampling = HintSampling(stop_probability=0.2)
    with no_device_waits():
        hint, mask = sample_hints(ab, sampling, _generator(13, "cuda"))
        automatic = sample_hints(ab, sampling)  # the device's default generator
    assert hint.device.type == mask.device.type == automatic[0].device.type == "cuda"
    patches = draw_patches(8, 40, 48, sampling, generator=_generator(13, "cuda"))
    expected_hint, expected_mask = _naive_hints(ab.double().cpu().numpy(), patches)
    np.testing.assert_array_equal(mask.cpu().numpy(), expected_mask)
    np.testing.assert_allclose(hint.cpu().numpy(), expected_hint, rtol=0, atol=1e-6)
