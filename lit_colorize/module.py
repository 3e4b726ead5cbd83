"""ColorizationModule: the LightningModule's wiring, nothing else. The network and its decoding
are ``network.ColorizationNet``; the loss ``losses`` (``chunked_head`` computes it without the
logits); the metrics ``metrics``; batch shapes and the augmentation contract ``batches``;
what predict renders and returns ``prediction``; the options ``options``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from lit_colorize.batches import PreparedBatch, is_photo_batch, images_of, prepare_batch, simulate_hints, train_augmentation_of
from lit_colorize.bins import ColorTable, require_color_table
from lit_colorize.chunked_head import chunked_head_cross_entropy
from lit_colorize.color import join_lab, to_float_rgb, upsample_ab
from lit_colorize.degrade import Degradation
from lit_colorize.divergence import DivergenceGuard
from lit_colorize.errors import ConfigError, check_temperature, check_temperatures, check_working_size
from lit_colorize.global_hints import GlobalHintSampling
from lit_colorize.hints import HintSampling, Location as HintLocation
from lit_colorize.losses import ClassLossOptions, LossOutput, class_targets, classification_loss, image_weights, rebalancing_weights, regression_loss
from lit_colorize.metrics import EvaluationMetrics, PixelAccuracy
from lit_colorize.options import Decoding, Head, LRSchedule, Optimizer, build_optimizers, check_module_options
from lit_colorize.network import ColorizationNet, upgrade_state_dict
from lit_colorize.prediction import ColorizedPhoto, RenderSettings, predict_batch
from lit_colorize.unet import Activation, widths_from


class ColorizationModule(L.LightningModule):
    """U-Net colorizer with a classification head over ``grid_size**2`` ab bins (the thesis)
    or a 2-channel regression head (the MSE baseline).

    Batches arrive as uint8 RGB; conversion to Lab and binning run on the device after the
    transfer, so loaders only move bytes.
    """

    def __init__(
        self,
        head: Head = "classification",
        grid_size: int = 18,
        widths: Sequence[int] | None = (8, 16, 32),
        base_width: int = 8,
        depth: int = 3,
        width_divider: int = 1,
        activation: Activation = "relu",
        optimizer: Optimizer = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_schedule: LRSchedule = "constant",
        decoding: Decoding = "mode_mean",
        eval_temperature: float = 1.0,
        predict_temperatures: Sequence[float] = (0.0, 0.8, 1.0),
        class_rebalancing: bool = False,
        rebalancing_sigma: float = 5.0,
        rebalancing_mix: float = 0.5,
        soft_targets: int = 0,
        soft_sigma: float = 5.0,
        gamut_classes: bool = False,
        gray_image_threshold: float | None = None,
        output_stride: int = 1,
        global_context: bool = False,
        hints: bool = False,
        hint_location: HintLocation = "uniform",
        hint_stop_probability: float = 0.125,
        hint_free_context: bool = False,
        global_hints: bool = False,
        global_hint_probability: float = 0.5,
        predict_working_size: int | None = None,
        predict_decoding: dict[str, Any] | None = None,
        fused_head_loss: bool = True,
        channels_last: bool = True,
        compile: bool = False,
        degrade_input: bool = False,
    ) -> None:
        """Literature options (all off: the thesis's plain cross-entropy; see ``losses``):
        ``class_rebalancing`` (Gaussian ``rebalancing_sigma``, uniform share ``rebalancing_mix``),
        ``soft_targets`` k nearest bins (``soft_sigma``), ``gamut_classes``, ``gray_image_threshold``
        (loss weight 0 for training images with no chroma above it); ``output_stride`` 2 or 4:
        logits at 1/2 or 1/4 size; ``global_context``: Iizuka et al.'s scene vector at the bottleneck.
        ``hints``: Zhang et al. 2017's user-guided model, hints simulated while training
        (``hint_stop_probability``, ``hint_location``: :mod:`lit_colorize.hints`; ``hint_free_context``:
        the global context without the hints, so a hint stays local, issue 31); evaluation runs without
        hints. ``global_hints``: a palette's or reference photo's ab distribution as a further input, the truth's own
        given while training with ``global_hint_probability`` (:mod:`lit_colorize.global_hints`); evaluation: none.
        ``predict_working_size``, ``predict_decoding`` (``{name: annealed_mean, temperature: 0.38}``): what predict,
        the Colorizer, the page and video use by default, measured for the model. ``fused_head_loss``: the loss
        without the logits (``chunked_head``); ``channels_last``: NHWC; ``compile``: ``torch.compile`` of the U-Net body."""
        super().__init__()
        check_module_options(head, optimizer, lr_schedule, grid_size, lr, bool(class_rebalancing or soft_targets or gamut_classes))
        eval_temperature = check_temperature(eval_temperature, "eval_temperature")
        # Plain lists keep the saved hyperparameters loadable with torch.load(weights_only=True).
        widths = [int(w) for w in widths] if widths else list(widths_from(base_width, depth, width_divider))
        predict_temperatures = check_temperatures(predict_temperatures, "predict_temperatures")
        predict_working_size = check_working_size(predict_working_size, "predict_working_size")
        self.save_hyperparameters()
        try:
            self.net = ColorizationNet(
                head, grid_size, widths, activation, output_stride, decoding, gamut_classes, channels_last, global_context,
                hints, predict_working_size, predict_decoding, hint_free_context, global_hints,
            )
        except ValueError as error:  # widths, activation, output_stride: the user's options
            raise ConfigError(str(error)) from error
        self.degradation = Degradation() if degrade_input else nn.Identity()  # of the L input while training: lit_colorize.degrade
        self.hint_sampling = HintSampling(stop_probability=hint_stop_probability, location=hint_location) if hints else None
        self.global_hint_sampling = GlobalHintSampling(global_hint_probability) if global_hints else None
        self.loss_options = ClassLossOptions(grid_size, soft_targets, soft_sigma, gamut_classes, class_rebalancing)
        # Derived from the bin table when it is built (see on_color_table_built); saved with it.
        self.register_buffer("class_weights", torch.ones(grid_size * grid_size))
        self._train_image_size_recorded = False  # a Python flag: no device sync per batch
        self.render_settings = RenderSettings(predict_temperatures)  # what predict renders; a writer sets its own
        # nan_strategy="disable": no device sync per update; a NaN loss stops the run (DivergenceGuard).
        self.train_loss = MeanMetric(nan_strategy="disable")
        self.train_acc = PixelAccuracy()
        self.divergence = DivergenceGuard(math.log(grid_size * grid_size) if self.is_classifier else 0.25)
        self.evaluation = EvaluationMetrics(grid_size, classifier=self.is_classifier)

    @property
    def is_classifier(self) -> bool:
        return self.hparams.head == "classification"

    @property
    def color_table(self) -> ColorTable | None:
        return self.net.color_table  # None for the regression head

    def forward(self, l_norm: Tensor, global_hint: Tensor | None = None) -> Tensor:
        """Network-scaled L (B, 1, H, W) (a hint model: and hint ab, mask), global hint vectors -> bin logits or normalized ab."""
        return self.net(l_norm, global_hint)

    def configure_model(self) -> None:
        if self.hparams.compile:
            self.net.compile_body()

    def on_color_table_built(self) -> None:
        """Called by ColorTableBuilder once the table holds the training colors: derive the class
        weights (rebalancing) and the class of each bin (gamut-aware classes)."""
        hp = self.hparams
        if hp.class_rebalancing:
            counts = self.color_table.counts
            self.class_weights.copy_(rebalancing_weights(counts, hp.grid_size, hp.rebalancing_sigma, hp.rebalancing_mix))
        self.net.set_classes_from_table()

    # --- data on the device -------------------------------------------------------------
    def prepare_batch(self, images: Tensor) -> PreparedBatch:
        """uint8/float RGB on the device -> L input, ab (ab units), bin targets, RGB reference."""
        return prepare_batch(images, self.hparams.grid_size, self.hparams.output_stride)

    def prepare_training_batch(self, images: Tensor, augmentation: nn.Module | None) -> PreparedBatch:
        """:meth:`prepare_batch` after the batch augmentation, applied to RGB so L and ab stay aligned."""
        if augmentation is not None:
            images = augmentation(to_float_rgb(images)).clamp_(0.0, 1.0)
        batch = self.prepare_batch(images)
        batch["l"] = self.degradation(batch["l"])
        return simulate_hints(batch, self.hparams.grid_size, self.hint_sampling, self.global_hint_sampling)

    def network_input(self, batch: PreparedBatch) -> tuple[Tensor, Tensor | None]:
        """L with the batch's hints for a user-guided model, and its global hints (none outside training)."""
        return self.net.network_input(batch["l"], batch.get("hints")), batch.get("global_hint")

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Lab and bins on the device; while training, first the DataModule's declared
        ``train_augmentation`` (see ``batches.ColorizationDataModule``). Photos pass as they are."""
        if is_photo_batch(batch):
            return batch
        images, trainer = images_of(batch), self._trainer
        if trainer is None or not trainer.training:
            index = {"index": batch["index"]} if isinstance(batch, dict) and "index" in batch else {}
            return {**self.prepare_batch(images), **index}  # type: ignore[typeddict-item]
        if not self._train_image_size_recorded:
            self.net.train_image_size.fill_(min(images.shape[-2:]))
            self._train_image_size_recorded = True
        return self.prepare_training_batch(images, train_augmentation_of(trainer.datamodule))

    # --- steps --------------------------------------------------------------------------
    def compute_loss(self, batch: PreparedBatch) -> LossOutput:
        """The one step shared by training, validation and test: loss and predicted bins of a
        prepared batch. Training with ``fused_head_loss`` never materializes the logits."""
        threshold = self.hparams.gray_image_threshold
        per_image = image_weights(batch["target_ab"], threshold) if self.training and threshold is not None else None
        if not self.is_classifier:
            output = self(*self.network_input(batch))
            predicted = self.net.predicted_bins(output.detach())
            return LossOutput(regression_loss(output, batch["target_ab"], per_image), predicted, output)
        targets = class_targets(batch["bins"], batch.get("target_ab"), self.loss_options, self.net.class_of_bin, self.class_weights, per_image)
        if self.training and self.hparams.fused_head_loss:
            features = self.net.body(*self.network_input(batch))
            return LossOutput(*chunked_head_cross_entropy(features, self.net.head.weight, self.net.head_bias(), *targets))
        output = self(*self.network_input(batch))
        return LossOutput(classification_loss(output, targets), output.detach().argmax(dim=1), output)

    def training_step(self, batch: PreparedBatch, batch_idx: int) -> Tensor:
        result = self.compute_loss(batch)
        self.divergence.record(result.loss)
        self.train_loss(result.loss)
        self.train_acc(result.predicted_bins, batch["bins"])
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return result.loss

    def on_train_start(self) -> None:
        self.divergence.reset()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Stop before a NaN reaches the weights (see :class:`DivergenceGuard`)."""
        self.divergence.check(self._trainer, self.global_step, self.current_epoch, self.hparams.lr)

    def validation_step(self, batch: PreparedBatch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: PreparedBatch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_start(self) -> None:
        """The rebalanced AuC weighs pixels by the training colors' prior when the table holds it."""
        if self.is_classifier and bool(self.color_table.built):
            self.evaluation.set_prior(self.color_table.counts)

    on_test_epoch_start = on_validation_epoch_start

    def _evaluate(self, batch: PreparedBatch, stage: str) -> None:
        result = self.compute_loss(batch)
        # One argmax per batch (in compute_loss) serves the decoding and the top-1 accuracy.
        ab = upsample_ab(self.net.decode(result.output, self.hparams.eval_temperature, result.predicted_bins), batch["ab"].shape[-2:])
        rgb = (join_lab(batch["l"], ab), batch["rgb"])
        self.evaluation.update(result.loss, result.predicted_bins, result.output, batch["bins"], (ab, batch["ab"]), rgb)
        for name, metric in self.evaluation.named_metrics():
            self.log(f"{stage}/{name}", metric, prog_bar=name in EvaluationMetrics.PROGRESS_BAR)

    def on_predict_start(self) -> None:
        """An untrained classifier has no bin colors: refuse, rather than write orange images."""
        if self.is_classifier:
            require_color_table(self.color_table.built, "this model")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> list[ColorizedPhoto]:
        """One :class:`ColorizedPhoto` per item, rendered as :attr:`render_settings` say (:func:`predict_batch`)."""
        return predict_batch(self.net, batch, self.render_settings, batch_idx, dataloader_idx)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, with the fix, a classification checkpoint without a bin color table, except
        when training resumes from it (ColorTableBuilder then builds the table)."""
        fitting = self._trainer is not None and self._trainer.state.fn == "fit"
        upgrade_state_dict(checkpoint.get("state_dict", {}), self.hparams.grid_size, require_table=self.is_classifier and not fitting)

    def configure_optimizers(self) -> Any:
        return build_optimizers(self.parameters(), self.hparams, lambda: int(self.trainer.estimated_stepping_batches))
