"""The field's metrics against small cases worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from lit_colorize.bins import ab_to_bin
from torchmetrics.classification import MulticlassAccuracy

from lit_colorize.metrics import ABErrorAUC, Colorfulness, DeltaColorfulness, PixelAccuracy, colorfulness


def ab_image(pixels: list[tuple[float, float]]) -> torch.Tensor:
    """One image, one row: (1, 2, 1, N)."""
    return torch.tensor(pixels, dtype=torch.float32).t()[None, :, None, :]


def test_auc_of_the_cumulative_ab_error_curve() -> None:
    # errors 0 and 5: half the pixels within t for t = 0..4, all of them for t = 5..150
    metric = ABErrorAUC()
    metric.update(ab_image([(0, 0), (3, 4)]), ab_image([(0, 0), (0, 0)]))
    assert metric.compute().item() == pytest.approx((5 * 0.5 + 146 * 1.0) / 151)
    # an error beyond 150 is never within; exact pixels always are
    metric = ABErrorAUC()
    metric.update(ab_image([(0, 0), (60, -100)]), ab_image([(0, 0), (60, 100)]))
    assert metric.compute().item() == pytest.approx(0.5)
    # a fractional error counts from the next integer threshold on: 0.5 -> t >= 1
    metric = ABErrorAUC(max_threshold=3)
    metric.update(ab_image([(0.5, 0)]), ab_image([(0, 0)]))
    assert metric.compute().item() == pytest.approx(3 / 4)


def test_rebalanced_auc_weights_pixels_by_inverse_prior_of_their_true_bin() -> None:
    truth = ab_image([(0, 0), (0, 0), (0, 0), (60, 60)])
    prediction = ab_image([(0, 0), (0, 0), (0, 0), (60, -140)])  # the rare color is missed (error 200)
    common, rare = ab_to_bin(truth, 18)[0, 0, [0, 3]].tolist()
    raw = ABErrorAUC()
    raw.update(prediction, truth)
    assert raw.compute().item() == pytest.approx(0.75)
    # Prior of the evaluated pixels themselves: each bin counts equally, (1 + 0) / 2.
    own = ABErrorAUC(rebalanced=True)
    own.update(prediction, truth)
    assert own.compute().item() == pytest.approx(0.5)
    # A training prior of 0.9 / 0.1: weights 1/0.9 per common pixel and 10 for the rare one.
    prior = torch.zeros(324)
    prior[common], prior[rare] = 0.9, 0.1
    given = ABErrorAUC(rebalanced=True)
    given.set_prior(prior * 1000)  # counts are fine: normalized
    given.update(prediction, truth)
    assert given.compute().item() == pytest.approx((3 / 0.9) / (3 / 0.9 + 10))


def test_colorfulness_by_hand() -> None:
    # one red and one black pixel: rg = (255, 0), yb = (127.5, 0)
    image = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])[None, :, None, :]
    spread = math.sqrt(127.5**2 + 63.75**2)  # population standard deviations
    mean = math.sqrt(127.5**2 + 63.75**2)
    assert colorfulness(image).item() == pytest.approx(spread + 0.3 * mean)
    gray = torch.full_like(image, 0.4)
    assert colorfulness(gray).item() == pytest.approx(0.0, abs=1e-9)
    delta = DeltaColorfulness()
    delta.update(gray, image)
    delta.update(image, image)
    assert delta.compute().item() == pytest.approx((spread + 0.3 * mean) / 2)
    mean_cf = Colorfulness()
    mean_cf.update(torch.cat([image, gray]))
    assert mean_cf.compute().item() == pytest.approx((spread + 0.3 * mean) / 2)


def test_pixel_accuracy_by_hand_and_against_torchmetrics() -> None:
    # 2 pixels, 3 classes: pixel 0 true class 2 (ranked 2nd), pixel 1 true class 0 (ranked 1st)
    scores = torch.tensor([[0.1, 0.3, 0.2], [0.9, 0.05, 0.0]]).t().reshape(1, 3, 1, 2)
    target = torch.tensor([[[2, 0]]])
    top1, top2 = PixelAccuracy(), PixelAccuracy(top_k=2)
    top1.update(scores, target)
    top2.update(scores, target)
    assert top1.compute().item() == 0.5 and top2.compute().item() == 1.0
    indices = PixelAccuracy()
    indices.update(scores.argmax(dim=1), target)
    assert indices.compute().item() == 0.5

    generator = torch.Generator().manual_seed(0)
    for channels_last in (False, True):
        scores = torch.randn(3, 36, 5, 7, generator=generator)
        if channels_last:
            scores = scores.contiguous(memory_format=torch.channels_last)
        target = torch.randint(0, 36, (3, 5, 7), generator=generator)
        for k in (1, 5):
            ours, oracle = PixelAccuracy(top_k=k), MulticlassAccuracy(36, top_k=k, average="micro", multidim_average="global")
            for half in (slice(0, 2), slice(2, 3)):  # accumulates over updates
                ours.update(scores[half], target[half])
                oracle.update(scores[half], target[half])
            torch.testing.assert_close(ours.compute(), oracle.compute())
    with pytest.raises(ValueError, match="needs class scores"):
        PixelAccuracy(top_k=5).update(target, target)
