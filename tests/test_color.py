"""Lab conversion against scikit-image, the independent oracle."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from lit_colorize.color import (
    denormalize_ab,
    gray_rgb,
    join_lab,
    lab_to_rgb,
    near_gray_images,
    normalize_ab,
    rgb_to_lab,
    split_lab,
)
from datamodules.landscape import is_colorful
from tests.conftest import requires_cuda


def _cube_corners_and_edges(steps: int = 256) -> np.ndarray:
    """All points on the 12 edges of the sRGB cube (corners included), shape (N, 3) in [0, 1]."""
    ramp = np.linspace(0.0, 1.0, steps)
    points = []
    for axis in range(3):
        for fixed in itertools.product([0.0, 1.0], repeat=2):
            edge = np.empty((steps, 3))
            edge[:, axis] = ramp
            edge[:, [i for i in range(3) if i != axis]] = fixed
            points.append(edge)
    return np.concatenate(points)


def _as_image(points: np.ndarray) -> torch.Tensor:
    """(N, 3) -> (1, 3, 1, N) float32 tensor."""
    return torch.from_numpy(points.T[None, :, None, :].astype(np.float32))


@pytest.mark.parametrize("name", ["random", "cube_edges"])
def test_rgb_to_lab_matches_skimage(name: str) -> None:
    rng = np.random.default_rng(1)
    points = rng.random((20_000, 3)) if name == "random" else _cube_corners_and_edges()
    ours = rgb_to_lab(_as_image(points))[0, :, 0, :].T.double().numpy()
    reference = skcolor.rgb2lab(points[None].astype(np.float32).astype(np.float64))[0]
    assert np.abs(ours - reference).max() <= 1e-3


def test_uint8_and_float_inputs_agree() -> None:
    rgb = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    torch.testing.assert_close(rgb_to_lab(rgb), rgb_to_lab(rgb.float() / 255), atol=1e-5, rtol=0)


def test_round_trip_within_one_level() -> None:
    rgb = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    back = lab_to_rgb(rgb_to_lab(rgb))
    assert (back - rgb.float() / 255).abs().max() <= 1 / 255


def test_lab_to_rgb_matches_skimage_in_gamut() -> None:
    rgb = np.random.default_rng(2).random((5000, 3))
    lab = skcolor.rgb2lab(rgb[None])[0]
    ours = lab_to_rgb(_as_image(lab))[0, :, 0, :].T.double().numpy()
    assert np.abs(ours - skcolor.lab2rgb(lab[None])[0]).max() <= 1e-4


def test_out_of_gamut_is_clipped_into_unit_range() -> None:
    lab = torch.tensor([[100.0, 127.0, -128.0], [5.0, -128.0, 127.0], [50.0, 127.0, 127.0]]).T[None, :, None, :]
    rgb = lab_to_rgb(lab)
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    assert torch.isfinite(rgb).all()


def test_split_and_join_scalings() -> None:
    rgb = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1)
    l_norm, ab = split_lab(rgb)
    reference = skcolor.rgb2lab(np.array([[[1.0, 0.0, 0.0]]]))[0, 0]
    assert l_norm.item() == pytest.approx(reference[0] / 100, abs=1e-5)
    assert ab.flatten().tolist() == pytest.approx(reference[1:].tolist(), abs=1e-3)
    assert normalize_ab(torch.tensor([-128.0, 127.0])).tolist() == [0.0, 1.0]
    torch.testing.assert_close(denormalize_ab(normalize_ab(ab)), ab)
    torch.testing.assert_close(join_lab(l_norm, ab), rgb.float() / 255, atol=1 / 255, rtol=0)
    gray = gray_rgb(l_norm)
    assert torch.allclose(gray[:, 0], gray[:, 1], atol=1e-4) and torch.allclose(gray[:, 1], gray[:, 2], atol=1e-4)


def test_rejects_bad_shapes_and_dtypes() -> None:
    with pytest.raises(ValueError, match="3, H, W"):
        rgb_to_lab(torch.zeros(1, 4, 2, 2))
    with pytest.raises(TypeError, match="uint8 or floating"):
        rgb_to_lab(torch.zeros(1, 3, 2, 2, dtype=torch.int32))


@requires_cuda
def test_conversion_stays_on_cuda() -> None:
    rgb = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8, device="cuda")
    lab = rgb_to_lab(rgb)
    assert lab.device.type == "cuda"
    torch.testing.assert_close(lab.cpu(), rgb_to_lab(rgb.cpu()), atol=1e-3, rtol=0)


def test_near_gray_matches_a_numpy_oracle_and_the_landscape_filter() -> None:
    """One near-gray rule: the loss weight and Landscape's filter agree with max |ab| <= t in float64."""
    rng = np.random.default_rng(0)
    ab = rng.normal(size=(32, 2, 6, 6)) * rng.uniform(0.5, 8.0, size=(32, 1, 1, 1))
    chroma = np.sqrt((ab.astype(np.float32).astype(np.float64) ** 2).sum(axis=1)).reshape(32, -1).max(axis=1)
    for threshold in (5.0, 12.0):
        expected = chroma <= threshold
        assert 0 < expected.sum() < 32  # both kinds present
        assert near_gray_images(torch.from_numpy(ab).float(), threshold).numpy().tolist() == expected.tolist()
    # uint8 photos: Landscape keeps exactly the ones that are not near-gray (Lab from scikit-image).
    rgb = np.full((16, 3, 4, 4), 120, dtype=np.uint8)
    rgb[:, :, 0, 0] = rng.integers(100, 141, size=(16, 3), dtype=np.uint8)
    lab_ab = skcolor.rgb2lab(rgb.transpose(0, 2, 3, 1).astype(np.float64) / 255)[..., 1:]
    sk_chroma = np.sqrt((lab_ab**2).sum(axis=-1)).reshape(16, -1).max(axis=1)
    threshold = 6.0
    clear = np.abs(sk_chroma - threshold) > 0.1  # away from the two Lab implementations' rounding
    colorful = is_colorful(torch.from_numpy(rgb), threshold).numpy()
    assert clear.sum() >= 12 and 0 < colorful.sum() < 16
    assert colorful[clear].tolist() == (sk_chroma[clear] > threshold).tolist()
