"""Bins and color tables against a plain NumPy implementation written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lit_colorize.bins import ColorHistogram, ColorTable, ab_to_bin, bin_centers

# --- the NumPy oracle ----------------------------------------------------------------------


def np_bin(a: np.ndarray, b: np.ndarray, grid: int) -> np.ndarray:
    """Bin index of ab (ab units) on a grid x grid uniform grid over (ab + 128) / 255."""
    a_index = np.minimum(np.floor(np.clip((a + 128) / 255, 0, 1) * grid), grid - 1).astype(int)
    b_index = np.minimum(np.floor(np.clip((b + 128) / 255, 0, 1) * grid), grid - 1).astype(int)
    return a_index * grid + b_index


def np_centers(grid: int) -> np.ndarray:
    axis = (np.arange(grid) + 0.5) / grid * 255 - 128
    return np.array([(a, b) for a in axis for b in axis])


def np_table(a: np.ndarray, b: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """counts, mean (K, 2), mode (K, 2), by loops over bins."""
    k = grid * grid
    bins = np_bin(a, b, grid)
    counts = np.array([(bins == i).sum() for i in range(k)], dtype=float)
    centers = np_centers(grid)
    mean = centers.copy()
    for i in range(k):
        if counts[i]:
            mean[i] = a[bins == i].mean(), b[bins == i].mean()
    # Mode: the most frequent rounded (a, b) among the 1-unit values whose own bin is i.
    rounded_a = np.clip(np.round(a), -128, 127).astype(int)
    rounded_b = np.clip(np.round(b), -128, 127).astype(int)
    values, frequency = np.unique(np.stack([rounded_a, rounded_b], 1), axis=0, return_counts=True)
    value_bins = np_bin(values[:, 0].astype(float), values[:, 1].astype(float), grid)
    mode = mean.copy()
    for i in range(k):
        candidates = np.nonzero(value_bins == i)[0]
        if len(candidates):
            best = candidates[frequency[candidates] == frequency[candidates].max()]
            mode[i] = values[best[0]]  # np.unique sorts by (a, b): the first is the smallest
    occupied = np.nonzero(counts)[0]
    grid_cell = np.array([(i // grid, i % grid) for i in range(k)])  # the grid is uniform: steps suffice
    for i in range(k):
        if not counts[i]:
            nearest = occupied[np.argmin(((grid_cell[occupied] - grid_cell[i]) ** 2).sum(axis=1))]
            mean[i], mode[i] = mean[nearest], mode[nearest]
    return counts, mean, mode


def clustered_ab(n: int, seed: int = 0) -> np.ndarray:
    """ab samples from a few tight clusters, so most bins stay empty and modes are sharp."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [40.0, 55.0], [-60.0, 30.0], [20.0, -70.0], [110.0, 110.0]])
    picks = rng.integers(len(centers), size=n)
    return np.clip(centers[picks] + rng.normal(0, 6, size=(n, 2)), -128, 127)


def as_batch(ab: np.ndarray) -> torch.Tensor:
    """(N, 2) -> (1, 2, 1, N) float32."""
    return torch.from_numpy(ab.T[None, :, None, :].astype(np.float32))


def table_from(ab: np.ndarray, grid: int) -> ColorTable:
    histogram = ColorHistogram(grid)
    histogram.update(as_batch(ab))
    table = ColorTable(grid)
    table.fill(histogram)
    return table


# --- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", [6, 18])
def test_ab_to_bin_matches_numpy(grid: int) -> None:
    ab = np.random.default_rng(3).uniform(-140, 140, size=(50_000, 2)).astype(np.float32).astype(float)
    ours = ab_to_bin(as_batch(ab), grid).reshape(-1).numpy()
    np.testing.assert_array_equal(ours, np_bin(ab[:, 0], ab[:, 1], grid))
    assert ours.min() >= 0 and ours.max() < grid * grid


def test_bin_counts_and_centers() -> None:
    assert bin_centers(6).shape == (36, 2)
    assert bin_centers(18).shape == (324, 2)
    np.testing.assert_allclose(bin_centers(18).numpy(), np_centers(18), atol=1e-4)
    # Each center lies in its own bin.
    centers = bin_centers(18)
    assert ab_to_bin(centers.T[None, :, None, :], 18).reshape(-1).tolist() == list(range(324))


def test_extremes_land_in_corner_bins() -> None:
    ab = torch.tensor([[-128.0, -128.0], [127.0, 127.0], [-128.0, 127.0], [300.0, -300.0]])
    assert ab_to_bin(ab.T[None, :, None, :], 6).reshape(-1).tolist() == [0, 35, 5, 30]


@pytest.mark.parametrize("grid", [6, 18])
def test_table_matches_numpy(grid: int) -> None:
    ab = clustered_ab(40_000).astype(np.float32).astype(float)
    histogram = ColorHistogram(grid)
    for chunk in np.array_split(ab, 7):  # accumulate over several batches
        histogram.update(as_batch(chunk))
    table = ColorTable(grid)
    table.fill(histogram)
    counts, mean, mode = np_table(ab[:, 0], ab[:, 1], grid)
    np.testing.assert_array_equal(table.counts.numpy(), counts)
    np.testing.assert_allclose(table.mean_ab.numpy(), mean, atol=1e-4)
    np.testing.assert_array_equal(table.mode_ab.numpy(), mode)
    assert bool(table.built)


def test_mode_is_the_most_frequent_value_not_the_maximum() -> None:
    # One bin (grid 6 bins are 42.5 units wide): 10 pixels at a=1, 3 at a=20. max() would say 20.
    ab = np.array([[1.0, 2.0]] * 10 + [[20.0, 2.0]] * 3)
    table = table_from(ab, 6)
    index = int(np_bin(np.array([1.0]), np.array([2.0]), 6)[0])
    assert table.mode_ab[index].tolist() == [1.0, 2.0]
    assert table.mean_ab[index].tolist() == pytest.approx([(10 * 1 + 3 * 20) / 13, 2.0])


def test_empty_bins_take_the_nearest_occupied_bin() -> None:
    ab = np.array([[-100.0, -100.0], [100.0, 100.0], [101.0, 99.0]])
    table = table_from(ab, 6)
    low, high = int(np_bin(ab[:1, 0], ab[:1, 1], 6)[0]), int(np_bin(ab[1:2, 0], ab[1:2, 1], 6)[0])
    assert int((table.counts > 0).sum()) == 2
    # bin 1 (next to bin 0, the low corner) borrows the low color; bin 34 the high one.
    torch.testing.assert_close(table.mean_ab[1], table.mean_ab[low])
    torch.testing.assert_close(table.mode_ab[34], table.mode_ab[high])


def test_pixel_weight_masks_pixels_out() -> None:
    ab = clustered_ab(1000)
    weighted, plain = ColorHistogram(18), ColorHistogram(18)
    weight = torch.ones(1, 1, 1000)
    weight[..., 500:] = 0
    weighted.update(as_batch(ab), pixel_weight=weight)
    plain.update(as_batch(ab[:500]))
    for ours, reference in zip(weighted.tensors(), plain.tensors()):
        torch.testing.assert_close(ours, reference)


def test_decode_interpolates_mode_to_mean() -> None:
    table = table_from(clustered_ab(5000), 6)
    bins = torch.tensor([[[0, 7], [14, 35]]])  # (1, 2, 2)
    mode, mean = table.mode_ab[bins].movedim(-1, 1), table.mean_ab[bins].movedim(-1, 1)
    torch.testing.assert_close(table.decode_bins(bins, 0.0), mode)
    torch.testing.assert_close(table.decode_bins(bins, 1.0), mean)
    torch.testing.assert_close(table.decode_bins(bins, 0.8), mode - 0.8 * (mode - mean))
    logits = torch.nn.functional.one_hot(bins, 36).movedim(-1, 1).float()
    torch.testing.assert_close(table.decode(logits, 0.8), table.decode_bins(bins, 0.8))


def test_annealed_mean_matches_numpy() -> None:
    table = table_from(clustered_ab(5000), 6)
    logits = torch.randn(2, 36, 3, 4)
    temperature = 0.38
    z = logits.double().numpy() / temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    expected = np.einsum("bkhw,kc->bchw", p, table.mean_ab.double().numpy())
    np.testing.assert_allclose(table.annealed_mean(logits, temperature).numpy(), expected, atol=1e-4)
    # T -> 0 is the mean color of the most likely bin.
    torch.testing.assert_close(table.annealed_mean(logits, 0.0), table.decode(logits, 1.0))


@pytest.mark.parametrize("method", ["decode", "annealed_mean"])
def test_decoding_traces_with_the_temperature_as_a_graph_input(method: str) -> None:
    """ONNX export traces the table's own decoding once, with T a 0-dim tensor input; the
    program must then decode every T like the eager call with a number, T = 0 included."""
    table = table_from(clustered_ab(5000), 6)

    class Decode(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = table

        def forward(self, logits: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
            return getattr(self.table, method)(logits, temperature)

    logits = torch.randn(2, 36, 3, 4)
    program = torch.export.export(Decode(), (logits, torch.tensor(0.8))).module()
    for temperature in (0.0, 0.38, 0.8, 1.0):
        expected = getattr(table, method)(logits, temperature)
        torch.testing.assert_close(program(logits, torch.tensor(temperature)), expected)


def test_table_is_buffers_that_restore_exactly() -> None:
    table = table_from(clustered_ab(2000), 18)
    restored = ColorTable(18)
    assert not bool(restored.built)
    restored.load_state_dict(table.state_dict())
    assert set(table.state_dict()) == {"counts", "mean_ab", "mode_ab", "built"}
    for name, value in table.state_dict().items():
        torch.testing.assert_close(restored.state_dict()[name], value)


def test_unbuilt_table_decodes_to_bin_centers() -> None:
    table = ColorTable(6)
    bins = torch.arange(36).view(1, 6, 6)
    torch.testing.assert_close(table.decode_bins(bins, 0.8).movedim(1, -1).reshape(-1, 2), bin_centers(6))


def test_empty_histogram_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="zero pixels"):
        ColorTable(6).fill(ColorHistogram(6))
