"""The colorization field's measurements, as torchmetrics Metrics (synced across processes).

* :class:`ABErrorAUC`: area under the cumulative curve of per-pixel ab error, thresholds 0 to
  150 (Zhang et al. 2016, "raw accuracy"), optionally class-rebalanced: each pixel weighted by
  the inverse prior of its ground-truth bin, so rare colors count as much as common ones.
* :class:`Colorfulness`, :class:`DeltaColorfulness`: Hasler and Suesstrunk (2003)
  colorfulness of the predictions, and its mean absolute difference to the ground truth's.
* :class:`EvaluationMetrics`: the suite logged under ``val/`` and ``test/``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from lit_colorize.bins import ab_to_bin


class ABErrorAUC(Metric):
    """Area under the curve "fraction of pixels with ab error <= t" for integer t in
    0..``max_threshold``, normalized to [0, 1] (1: every pixel exact).

    Errors are Euclidean distances in ab units. With ``rebalanced=True`` each pixel weighs
    1 / prior(its ground-truth bin): the prior given to :meth:`set_prior` (the training
    data's bin distribution, e.g. the bin table's counts), or else the evaluated pixels' own
    bin frequencies, which makes it the mean over bins of each bin's curve. Pixels of bins
    with zero prior weigh nothing. Per-bin error histograms are the state, so the prior may
    be set at any time before ``compute``.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, max_threshold: int = 150, rebalanced: bool = False, grid_size: int = 18, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_threshold = int(max_threshold)
        self.rebalanced = rebalanced
        self.grid_size = grid_size
        # pixels per (ground-truth bin, error rounded up to k), k = 0..max_threshold; beyond: last
        slots = grid_size * grid_size * (self.max_threshold + 2)
        self.add_state("histogram", default=torch.zeros(slots, dtype=torch.float64), dist_reduce_fx="sum")
        self.prior: Tensor | None = None

    def set_prior(self, prior: Tensor) -> None:
        """Bin probabilities or counts, shape (grid_size**2,), for the rebalanced variant."""
        prior = prior.detach().double().flatten()
        if prior.numel() != self.grid_size**2:
            raise ValueError(f"prior has {prior.numel()} bins, grid_size {self.grid_size} needs {self.grid_size**2}")
        self.prior = prior / prior.sum()

    def update(self, ab_pred: Tensor, ab_true: Tensor) -> None:
        """``ab_pred``, ``ab_true``: (B, 2, H, W) in ab units."""
        error = (ab_pred.double() - ab_true.double()).pow(2).sum(dim=-3).sqrt()
        slot = error.ceil().clamp_max(self.max_threshold + 1).long().flatten()
        true_bin = ab_to_bin(ab_true, self.grid_size).flatten()
        index = true_bin * (self.max_threshold + 2) + slot
        self.histogram += torch.bincount(index, minlength=self.histogram.numel()).double()

    def compute(self) -> Tensor:
        per_bin = self.histogram.reshape(self.grid_size**2, self.max_threshold + 2)
        within = per_bin[:, : self.max_threshold + 1].cumsum(dim=1)  # (K, T+1)
        pixels = per_bin.sum(dim=1)  # (K,)
        if self.rebalanced:
            prior = self.prior.to(pixels.device) if self.prior is not None else pixels / pixels.sum().clamp_min(1)
            weight = torch.where((prior > 0) & (pixels > 0), 1.0 / prior.clamp_min(1e-300), torch.zeros_like(prior))
        else:
            weight = torch.ones_like(pixels)
        curve = (weight[:, None] * within).sum(dim=0) / (weight * pixels).sum().clamp_min(1e-300)
        return curve.mean().float()


def colorfulness(rgb: Tensor) -> Tensor:
    """Hasler and Suesstrunk (2003) colorfulness of each image, RGB in [0, 1], shape (B, 3, H, W)
    -> (B,), on their 0-255 scale: sqrt(s_rg^2 + s_yb^2) + 0.3 sqrt(m_rg^2 + m_yb^2), with
    rg = R - G and yb = (R + G) / 2 - B."""
    rgb = rgb.double() * 255.0
    red, green, blue = rgb.unbind(dim=-3)
    rg = (red - green).flatten(1)
    yb = (0.5 * (red + green) - blue).flatten(1)
    spread = (rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False)).sqrt()
    mean = (rg.mean(dim=1).pow(2) + yb.mean(dim=1).pow(2)).sqrt()
    return spread + 0.3 * mean


class Colorfulness(Metric):
    """Mean colorfulness of the predicted images (higher is not better by itself: the truth's
    own level is the aim; see :class:`DeltaColorfulness`)."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def values(self, rgb_pred: Tensor, rgb_true: Tensor | None) -> Tensor:
        return colorfulness(rgb_pred)

    def update(self, rgb_pred: Tensor, rgb_true: Tensor | None = None) -> None:
        values = self.values(rgb_pred, rgb_true)
        self.total += values.sum()
        self.count += values.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp_min(1)).float()


class DeltaColorfulness(Colorfulness):
    """Mean absolute difference |CF(pred) - CF(truth)| per image (delta CF; 0 is the truth's)."""

    higher_is_better = False

    def values(self, rgb_pred: Tensor, rgb_true: Tensor | None) -> Tensor:
        if rgb_true is None:
            raise ValueError("DeltaColorfulness needs the ground-truth images")
        return (colorfulness(rgb_pred) - colorfulness(rgb_true)).abs()


class PixelAccuracy(Metric):
    """Share of pixels whose true bin is among the ``top_k`` predicted ones (micro average over
    every pixel of every image, as torchmetrics' ``MulticlassAccuracy(average="micro",
    multidim_average="global")``).

    Why not that class: for (B, K, H, W) scores it builds per-class statistics, about 0.7 s
    per 32x32x32 batch with 324 bins on a CPU, ten times the forward pass; counting hits of a
    top-k is the same number at the cost of one top-k.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, top_k: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.top_k = top_k
        self.add_state("hits", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("pixels", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """``preds``: scores (B, K, H, W), or bin indices (B, H, W) for top-1; ``target`` (B, H, W)."""
        if preds.is_floating_point():
            if self.top_k == 1:
                hits = preds.argmax(dim=1) == target
            else:
                hits = (preds.topk(self.top_k, dim=1).indices == target.unsqueeze(1)).any(dim=1)
        elif self.top_k == 1:
            hits = preds == target
        else:
            raise ValueError(f"top-{self.top_k} accuracy needs class scores (B, K, H, W), got indices {tuple(preds.shape)}")
        self.hits += hits.sum()
        self.pixels += target.numel()

    def compute(self) -> Tensor:
        return self.hits.float() / self.pixels.clamp_min(1)


class EvaluationMetrics(nn.Module):
    """What validation and test measure: the loss, bin accuracy (top-5 too for a classifier),
    and the prediction decoded at one temperature: ab error AuC (plain and rebalanced) against
    the true ab, PSNR, SSIM and colorfulness against the true RGB."""

    #: Shown in the progress bar; the rest are logged only.
    PROGRESS_BAR = ("loss", "acc", "acc_top5", "psnr")

    def __init__(self, grid_size: int, classifier: bool) -> None:
        super().__init__()
        # nan_strategy="disable": the default NaN check waits for the device on every update;
        # a NaN validation loss is reported as NaN rather than dropped.
        self.loss = MeanMetric(nan_strategy="disable")
        accuracy = {"acc": PixelAccuracy()}
        if classifier:
            accuracy["acc_top5"] = PixelAccuracy(top_k=5)
        # compute_groups=False: members are updated and logged one by one.
        self.accuracy = MetricCollection(accuracy, compute_groups=False)
        self.ab = MetricCollection(
            {"auc": ABErrorAUC(grid_size=grid_size), "auc_rebalanced": ABErrorAUC(rebalanced=True, grid_size=grid_size)},
            compute_groups=False,
        )
        self.rgb = MetricCollection(
            {
                "psnr": PeakSignalNoiseRatio(data_range=1.0),
                "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
                "colorfulness": Colorfulness(),
                "delta_colorfulness": DeltaColorfulness(),
            },
            compute_groups=False,
        )

    def set_prior(self, counts: Tensor) -> None:
        """Weigh the rebalanced AuC by the training colors' prior (else: the evaluated pixels' own)."""
        self.ab["auc_rebalanced"].set_prior(counts)

    def update(
        self, loss: Tensor, predicted_bins: Tensor, logits: Tensor | None, bins: Tensor, ab: tuple[Tensor, Tensor], rgb: tuple[Tensor, Tensor]
    ) -> None:
        """``ab`` and ``rgb``: (prediction, truth) pairs; ``logits`` for the top-5 accuracy."""
        self.loss.update(loss)
        self.accuracy["acc"].update(predicted_bins, bins)
        if "acc_top5" in self.accuracy:
            self.accuracy["acc_top5"].update(logits, bins)
        self.ab.update(*ab)
        self.rgb.update(*rgb)

    def named_metrics(self) -> Iterator[tuple[str, Metric]]:
        """Every metric by its logged name, progress-bar ones first."""
        yield "loss", self.loss
        yield from self.accuracy.items()
        yield "psnr", self.rgb["psnr"]
        yield from self.ab.items()
        yield from ((name, metric) for name, metric in self.rgb.items() if name != "psnr")
