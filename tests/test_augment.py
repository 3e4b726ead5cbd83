"""RandomCropRotateFlip: one warp per image; checked against slicing, flips, rot90 and its ranges."""

from __future__ import annotations

import math

import pytest
import torch

from lit_colorize.augment import RandomCropRotateFlip, affine_matrices
from tests.helpers import HostReadProbe


def _matrices(batch: int, image_size: tuple[int, int], **params: float) -> torch.Tensor:
    defaults = dict(width_fraction=1.0, height_fraction=1.0, center_x=0.0, center_y=0.0, angle=0.0, flip_x=1.0, flip_y=1.0)
    values = {name: torch.full((batch,), float(value)) for name, value in {**defaults, **params}.items()}
    return affine_matrices(**values, image_size=image_size)


def _images(batch: int = 2, height: int = 16, width: int = 16) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(0))


def test_the_whole_image_unturned_is_the_image() -> None:
    images = _images(height=12, width=20)
    out = RandomCropRotateFlip((12, 20)).warp(images, _matrices(2, (12, 20)))
    torch.testing.assert_close(out, images, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("flip", "dims"), [({"flip_x": -1.0}, [-1]), ({"flip_y": -1.0}, [-2])])
def test_flips_mirror_the_image(flip: dict[str, float], dims: list[int]) -> None:
    images = _images(height=12, width=20)
    out = RandomCropRotateFlip((12, 20)).warp(images, _matrices(2, (12, 20), **flip))
    torch.testing.assert_close(out, images.flip(dims), rtol=0, atol=1e-5)


def test_a_quarter_window_at_full_resolution_is_a_slice() -> None:
    """The top-left quadrant of a 32x48 image, output at 16x24: exactly those pixels."""
    images = _images(height=32, width=48)
    matrices = _matrices(2, (32, 48), width_fraction=0.5, height_fraction=0.5, center_x=-0.5, center_y=-0.5)
    out = RandomCropRotateFlip((16, 24)).warp(images, matrices)
    torch.testing.assert_close(out, images[..., :16, :24], rtol=0, atol=1e-5)


def test_a_quarter_turn_of_a_non_square_crop_window_is_rot90() -> None:
    """90 degrees on a 16x16 image equals torch.rot90 (the angle is in pixel space)."""
    images = _images()
    turned = RandomCropRotateFlip(16).warp(images, _matrices(2, (16, 16), angle=math.pi / 2))
    candidates = [images.rot90(1, dims=(-2, -1)), images.rot90(-1, dims=(-2, -1))]
    assert min((turned - c).abs().max().item() for c in candidates) < 1e-5


def test_random_windows_keep_to_their_ranges() -> None:
    torch.manual_seed(0)
    augment = RandomCropRotateFlip(32, scale=(0.3, 0.5), ratio=(0.8, 1.25), degrees=0.0, hflip=0.3, vflip=0.0)
    matrices = augment.sample_matrices(4000, (40, 60), torch.device("cpu"))
    linear = matrices[:, :, :2]
    width_fraction, height_fraction = linear[:, 0, 0].abs(), linear[:, 1, 1].abs()
    area = width_fraction * height_fraction  # of the 40x60 image: no window here needs shrinking
    aspect = width_fraction * 60 / (height_fraction * 40)
    assert area.min() >= 0.3 - 1e-6 and area.max() <= 0.5 + 1e-6
    assert aspect.min() >= 0.8 - 1e-6 and aspect.max() <= 1.25 + 1e-6
    assert (matrices[:, 0, 2].abs() + width_fraction).max() <= 1 + 1e-6  # inside the image
    assert (matrices[:, 1, 2].abs() + height_fraction).max() <= 1 + 1e-6
    assert abs((linear[:, 0, 0] < 0).float().mean().item() - 0.3) < 0.03  # left-right flips
    assert (linear[:, 1, 1] > 0).all()  # never upside down
    assert (linear[:, 0, 1] == 0).all()  # never turned


def test_turns_stay_within_degrees_and_windows_larger_than_the_image_shrink_to_fit() -> None:
    torch.manual_seed(0)
    augment = RandomCropRotateFlip(16, scale=(1.0, 1.0), ratio=(2.0, 2.0), degrees=30.0, hflip=0.0)
    matrices = augment.sample_matrices(2000, (16, 16), torch.device("cpu"))
    angle = torch.atan2(matrices[:, 1, 0], matrices[:, 0, 0])
    assert angle.abs().max() <= math.radians(30) + 1e-6 and angle.abs().max() > math.radians(29)
    width_fraction = matrices[:, :, 0].norm(dim=-1)
    torch.testing.assert_close(width_fraction, torch.ones(2000))  # sqrt(2) wide, clamped to the image


def test_forward_is_a_batch_on_its_device_without_host_reads() -> None:
    augment = RandomCropRotateFlip(24, scale=(0.7, 1.0), degrees=30.0, hflip=0.5, vflip=0.5)
    images = _images(batch=5, height=32, width=40)
    probe = HostReadProbe()
    probe.start()
    try:
        out = augment(images)
    finally:
        probe.stop()
    assert probe.reads == []
    assert out.shape == (5, 3, 24, 24) and out.dtype == images.dtype
    assert out.min() >= 0 and out.max() <= 1


def test_bad_arguments_and_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="scale"):
        RandomCropRotateFlip(8, scale=(0.9, 0.5))
    with pytest.raises(ValueError, match="ratio"):
        RandomCropRotateFlip(8, ratio=(0.0, 1.0))
    with pytest.raises(ValueError, match="flip"):
        RandomCropRotateFlip(8, hflip=1.5)
    with pytest.raises(ValueError, match="float image batch"):
        RandomCropRotateFlip(8)(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
