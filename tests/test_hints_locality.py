"""Issue 31: how far a hint reaches (the measurement, against numpy loops and hand counts) and
the fix (a global context computed without the hint channels), with old checkpoints unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lit_colorize.colorizer import module_from_checkpoint
from lit_colorize.hints import MOVED_AB, change_by_distance, far_moved_share, hint_distance, place_hints
from lit_colorize.network import ColorizationNet
from lit_colorize.pretrained import PRETRAINED_HINTS_NAME, pretrained_checkpoint


def loop_distance(height: int, width: int, centres: list[tuple[float, float]]) -> np.ndarray:
    out = np.empty((height, width))
    for y in range(height):
        for x in range(width):
            out[y, x] = min(math.hypot(y - cy, x - cx) for cy, cx in centres)
    return out


def test_distance_to_the_nearest_hint_matches_loops() -> None:
    centres = [(1.0, 2.0), (4.5, 6.0)]
    np.testing.assert_allclose(hint_distance(6, 9, centres).numpy(), loop_distance(6, 9, centres), atol=1e-12)
    with pytest.raises(ValueError, match="at least one hint"):
        hint_distance(3, 3, [])


def test_change_by_distance_matches_a_numpy_oracle() -> None:
    rng = np.random.default_rng(0)
    change = rng.uniform(0, 12, size=(7, 11))
    centres = [(2.0, 3.0)]
    distance = loop_distance(7, 11, centres)
    edges = (0, 1, 2.5, 4)
    rows = change_by_distance(torch.from_numpy(change), torch.from_numpy(distance), edges)
    for (mean, moved, count), low, high in zip(rows, edges, list(edges[1:]) + [np.inf]):
        picked = [change[y, x] for y in range(7) for x in range(11) if low <= distance[y, x] < high]
        assert count == len(picked)
        assert mean == pytest.approx(np.mean(picked))
        assert moved == pytest.approx(np.mean([value > MOVED_AB for value in picked]))


def test_change_by_distance_by_hand() -> None:
    """A 1x5 row, hint on pixel 0: distances 0..4; pixels moved 9, 9, 1, 6, 0 ab units.
    Bins [0, 2): 9, 9 (mean 9, both moved); [2, 4): 1, 6 (mean 3.5, one moved); [4, inf): 0; [9, inf) empty."""
    change = torch.tensor([[9.0, 9.0, 1.0, 6.0, 0.0]])
    distance = hint_distance(1, 5, [(0, 0)])
    rows = change_by_distance(change, distance, (0, 2, 4))
    assert rows == [(9.0, 1.0, 2), (3.5, 0.5, 2), (0.0, 0.0, 1)]
    empty = change_by_distance(change, distance, (9,))[0]
    assert math.isnan(empty[0]) and math.isnan(empty[1]) and empty[2] == 0


def test_far_moved_share_by_hand() -> None:
    """4x8 photo, hint at (0, 0); pixels with x >= 4 are at least 4 away (16 of them, plus
    (3, 3) at 4.24, so 17 are "far" at radius 4). Moved by 6 ab: the whole column x = 7 (4 pixels)
    and (3, 3): 5 of 17. A change of exactly 5 does not count."""
    change = torch.zeros(4, 8)
    change[:, 7] = 6.0
    change[3, 3] = 6.0
    change[:, 5] = MOVED_AB
    distance = hint_distance(4, 8, [(0, 0)])
    assert int((distance >= 4).sum()) == 17
    assert far_moved_share(change, distance, 4.0) == pytest.approx(5 / 17)
    assert math.isnan(far_moved_share(change, distance, 100.0))


def small_net(hint_free_context: bool) -> ColorizationNet:
    torch.manual_seed(0)
    return ColorizationNet(widths=(8, 16, 32), global_context=True, hints=True, hint_free_context=hint_free_context).eval()


def hinted_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """The same L (2 photos, 64x64) without hints and with one 3x3 hint at (6, 6)."""
    torch.manual_seed(1)
    l_norm = torch.rand(2, 1, 64, 64)
    hint_ab, mask = place_hints(64, 64, [(6, 6, 60.0, -40.0, 3)])
    hints = torch.cat([hint_ab, mask], dim=1).expand(2, -1, -1, -1)
    return torch.cat([l_norm, torch.zeros_like(hints)], dim=1), torch.cat([l_norm, hints], dim=1)


def global_vector(net: ColorizationNet, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = net.global_context.context.register_forward_hook(lambda module, args, out: seen.append(out))
    with torch.no_grad():
        net(x)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("hint_free_context", [False, True])
def test_with_the_option_a_hint_leaves_the_global_context_unchanged(hint_free_context: bool) -> None:
    net = small_net(hint_free_context)
    plain, hinted = hinted_inputs()
    same = torch.equal(global_vector(net, plain), global_vector(net, hinted))
    assert same == hint_free_context  # without the option the hint reaches the global vector


@pytest.mark.parametrize("hint_free_context", [False, True])
def test_with_the_option_the_output_far_from_a_hint_is_unchanged(hint_free_context: bool) -> None:
    """Widths 8-16-32 see about 40 px around a pixel; beyond 44 px of the hint (rows and columns
    50..63) only the global context could carry it."""
    net = small_net(hint_free_context)
    plain, hinted = hinted_inputs()
    with torch.no_grad():
        far = (net(plain) - net(hinted))[..., 50:, 50:]
        near = (net(plain) - net(hinted))[..., :10, :10]
    assert bool(near.abs().amax() > 1e-3)
    assert bool(far.abs().amax() == 0) == hint_free_context


def test_the_option_adds_no_weights_and_needs_hints_and_a_global_context() -> None:
    assert small_net(True).state_dict().keys() == small_net(False).state_dict().keys()
    for kwargs in ({"hints": True}, {"global_context": True}):
        with pytest.raises(ValueError, match="hint_free_context needs hints: true and global_context: true"):
            ColorizationNet(widths=(8, 16), hint_free_context=True, **kwargs)


def test_the_shipped_hint_checkpoint_loads_with_the_option_off() -> None:
    module = module_from_checkpoint(pretrained_checkpoint(PRETRAINED_HINTS_NAME))
    assert module.net.hints and module.net.global_context is not None
    assert module.net.context_channels is None
