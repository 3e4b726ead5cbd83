"""Loss options from the literature, against naive numpy oracles and hand cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lit_colorize import ColorizationModule
from lit_colorize.bins import bin_centers, nearest_occupied
from lit_colorize.color import near_gray_images
from lit_colorize.losses import rebalancing_weights, soft_targets
from tests.helpers import fitted_module


def np_rebalancing(counts: np.ndarray, centers: np.ndarray, sigma: float, mix: float) -> np.ndarray:
    """Zhang et al. eq. 4, one bin at a time."""
    p = counts / counts.sum()
    smooth = np.array([sum(p[j] * np.exp(-np.sum((centers[k] - centers[j]) ** 2) / (2 * sigma**2)) for j in range(len(p)))
                       for k in range(len(p))])  # fmt: skip
    smooth /= smooth.sum()
    weights = 1.0 / ((1 - mix) * smooth + mix / np.count_nonzero(counts))
    return weights / np.sum(smooth * weights)


@pytest.mark.parametrize("sigma", [5.0, 30.0])
def test_rebalancing_weights_match_the_formula(sigma: float) -> None:
    counts = torch.zeros(36)
    counts[[14, 15, 20, 21, 3]] = torch.tensor([5000.0, 3000.0, 1500.0, 400.0, 7.0])
    ours = rebalancing_weights(counts, 6, sigma=sigma, mix=0.5)
    expected = np_rebalancing(counts.numpy().astype(float), bin_centers(6).numpy().astype(float), sigma, 0.5)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5)
    assert ours[3] > ours[21] > ours[14]  # rarer colors weigh more


def test_soft_targets_are_the_k_nearest_bins_with_gaussian_weights() -> None:
    generator = torch.Generator().manual_seed(0)
    ab = torch.rand(2, 2, 3, 4, generator=generator) * 255 - 128
    ab[0, :, 0, 1] = torch.tensor([-128.0, -128.0])  # the grid's very corner
    ab[0, :, 0, 0] = torch.tensor([-127.5, 125.0])  # in a corner cell of the grid
    ab[1, :, 2, 3] = torch.tensor([0.3, -127.9])  # on an edge
    centers = bin_centers(18).numpy()
    for k in (1, 3, 5):
        indices, weights = soft_targets(ab, 18, k=k, sigma=5.0)
        for b, y, x in np.ndindex(2, 3, 4):
            distance2 = ((centers - ab[b, :, y, x].numpy()) ** 2).sum(axis=1)
            nearest = np.argsort(distance2)[:k]
            expected = np.exp(-distance2[nearest] / 50.0)
            chosen = indices[b, :, y, x].numpy()
            assert len(set(chosen.tolist())) == k and chosen.min() >= 0
            # the k smallest distances (ties, e.g. at the grid's corner, may pick either bin)
            np.testing.assert_allclose(np.sort(distance2[chosen]), distance2[nearest], rtol=1e-5)
            order = np.argsort(distance2[indices[b, :, y, x].numpy()], kind="stable")
            np.testing.assert_allclose(weights[b, order, y, x].numpy(), expected / expected.sum(), rtol=1e-4, atol=1e-7)


def test_nearest_occupied_and_near_gray_by_hand() -> None:
    counts = torch.zeros(9)  # 3 x 3 grid, bins 0 and 8 occupied
    counts[0], counts[8] = 4, 1
    assert nearest_occupied(counts, 3).tolist() == [0, 0, 0, 0, 0, 8, 0, 8, 8]  # 4 is a tie: lowest index
    ab = torch.zeros(2, 2, 2, 2)
    ab[1, 0, 1, 1] = 6.0  # one pixel of chroma 6 in the second image
    assert near_gray_images(ab, 5.0).tolist() == [True, False]
    assert near_gray_images(ab, 6.0).tolist() == [True, True]


def batch_for(module: ColorizationModule, seed: int = 0) -> dict[str, torch.Tensor]:
    images = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    return module.prepare_batch(images)


@pytest.mark.parametrize("fused", [True, False])
def test_loss_options_reduce_to_what_they_say(fused: bool) -> None:
    torch.manual_seed(0)
    plain = ColorizationModule(widths=(4, 8), fused_head_loss=fused)
    batch = batch_for(plain)
    logits = plain(batch["l"])
    loss = plain.compute_loss(batch).loss
    assert loss.item() == pytest.approx(F.cross_entropy(logits, batch["bins"]).item())

    counts = torch.rand(324) * (torch.rand(324) > 0.5)
    rebalanced = ColorizationModule(widths=(4, 8), class_rebalancing=True, fused_head_loss=fused)
    rebalanced.load_state_dict(plain.state_dict(), strict=False)
    rebalanced.color_table.counts.copy_(counts)
    rebalanced.on_color_table_built()
    loss = rebalanced.compute_loss(batch).loss
    weights = rebalancing_weights(counts, 18)[batch["bins"]]
    assert loss.item() == pytest.approx((F.cross_entropy(logits, batch["bins"], reduction="none") * weights).mean().item(), rel=1e-5)

    one_nearest = ColorizationModule(widths=(4, 8), soft_targets=1, fused_head_loss=fused)  # k=1: the hard target again
    one_nearest.load_state_dict(plain.state_dict(), strict=False)
    assert one_nearest.compute_loss(batch).loss.item() == pytest.approx(F.cross_entropy(logits, batch["bins"]).item(), rel=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_gamut_classes_mask_unseen_bins_and_remap_targets(fused: bool) -> None:
    module = ColorizationModule(widths=(4, 8), gamut_classes=True, fused_head_loss=fused)
    counts = torch.zeros(324)
    counts[[0, 100, 200]] = 1.0
    module.color_table.counts.copy_(counts)
    module.on_color_table_built()
    batch = batch_for(module)
    logits = module(batch["l"])
    assert torch.isfinite(logits[:, [0, 100, 200]]).all() and torch.isinf(logits[:, 1]).all()
    result = module.compute_loss(batch)
    loss, predicted = result.loss, result.predicted_bins
    assert set(predicted.unique().tolist()) <= {0, 100, 200}
    targets = nearest_occupied(counts, 18)[batch["bins"]]
    assert set(targets.unique().tolist()) <= {0, 100, 200}
    assert loss.item() == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_near_gray_training_images_weigh_nothing(fused: bool) -> None:
    module = ColorizationModule(widths=(4, 8), gray_image_threshold=5.0, fused_head_loss=fused)
    gray = torch.full((2, 3, 8, 8), 128, dtype=torch.uint8)
    batch = module.prepare_batch(gray)
    module.train()
    assert module.compute_loss(batch).loss.item() == 0.0
    module.eval()  # evaluation weighs every image
    assert module.compute_loss(batch).loss.item() > 0.0


def test_every_option_trains_and_the_metric_suite_is_logged(tmp_path) -> None:
    module, _, trainer = fitted_module(
        tmp_path, widths=(8, 16), class_rebalancing=True, soft_targets=5, gamut_classes=True, gray_image_threshold=2.0
    )
    metrics = trainer.callback_metrics
    for name in ("val/loss", "val/acc", "val/acc_top5", "val/psnr", "val/ssim", "val/auc", "val/auc_rebalanced",
                 "val/colorfulness", "val/delta_colorfulness"):  # fmt: skip
        assert name in metrics and torch.isfinite(metrics[name]), name
    assert 0.0 <= metrics["val/auc"] <= 1.0 and float(module.class_weights.std()) > 0


@pytest.mark.parametrize("head", ["classification", "regression"])
def test_coarser_output_stride(head: str) -> None:
    """Logits at 1/2 the size, targets from area-averaged ab, ab upsampled before the join."""
    module = ColorizationModule(head=head, widths=(4, 8, 16), output_stride=2)
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    batch = module.prepare_batch(images)
    assert batch["bins"].shape == (2, 8, 8) and batch["ab"].shape == (2, 2, 16, 16)
    torch.testing.assert_close(batch["target_ab"], F.avg_pool2d(batch["ab"], 2))
    module.eval()
    result = module.compute_loss(batch)
    loss, output = result.loss, result.output
    assert output.shape[-2:] == (8, 8) and torch.isfinite(loss)
    module.train()
    assert module.compute_loss(batch).predicted_bins.shape[-2:] == (8, 8)
    assert module.net.colorize(batch["l"], [0.8]).shape == (2, 1, 3, 16, 16)
    assert len(module.net.decoders) == 1 and module.net.head.in_channels == 8  # the last decoder level is gone
    with pytest.raises(ValueError, match="output_stride"):
        ColorizationModule(widths=(4, 8, 16), output_stride=3)
