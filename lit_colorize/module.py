"""ColorizationModule: L in, ab bins (or ab itself) out, as a LightningModule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from lit_colorize.bins import ColorTable, ab_to_bin, nearest_occupied
from lit_colorize.color import denormalize_ab, join_lab, near_gray_images, normalize_ab, split_lab, to_float_rgb
from lit_colorize.errors import ConfigError, UserError, check_temperature, check_temperatures
from lit_colorize.fullres import colorize_full_resolution
from lit_colorize.head import chunked_head_argmax, chunked_head_cross_entropy, pixel_major
from lit_colorize.losses import rebalancing_weights, soft_targets
from lit_colorize.metrics import ABErrorAUC, Colorfulness, DeltaColorfulness, PixelAccuracy
from lit_colorize.photos import PhotoItem, colorize_item
from lit_colorize.unet import Activation, UNet, widths_from

Head = Literal["classification", "regression"]
Decoding = Literal["mode_mean", "annealed_mean"]
DEFAULT_WORKING_SIZE = 256  # for a model whose training image size was never recorded
# The ab grid spans 255 ab units (the gamut itself about -110..110). At 128 a bin is 2 ab units
# wide, under the just-noticeable color difference (about 2.3), so finer bins carry nothing a
# viewer could see, while memory grows with the number of bins K = grid_size**2: the (K, H, W)
# logits of one 256x256 image take 4.3 GB at 128 (grid_size 1000 would ask for 262 GB), and
# building the table compares every bin with every other (K x K).
MAX_GRID_SIZE = 128
# A training loss this many times that of the trivial prediction (every bin equally likely:
# log K; for regression a constant mid-range ab: MSE at most 0.25) means training diverged.
DIVERGED_LOSS_FACTOR = 10.0


class NonFiniteLossError(UserError, FloatingPointError):
    """The training loss became NaN or infinite; raised before the update, so no weight is spoiled."""


class MissingColorTableError(UserError, RuntimeError):
    """A classification checkpoint whose bin color table was never built."""


def is_photo_batch(batch: Any) -> bool:
    """A predict batch of full-resolution photos (a list of :class:`PhotoItem`)."""
    return isinstance(batch, list) and bool(batch) and all(isinstance(item, PhotoItem) for item in batch)


def images_of(batch: Any) -> Tensor:
    """The RGB images of a datamodule batch: a tensor, the first item of a tuple, or ``batch["image"]``."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, dict) and "image" in batch:
        return batch["image"]
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    raise TypeError(f"a batch must be an RGB tensor, a (images, ...) tuple or a dict with 'image'; got {type(batch)}")


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
        optimizer: Literal["adam", "rmsprop"] = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_schedule: Literal["constant", "onecycle", "cosine"] = "constant",
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
        fused_head_loss: bool = True,
        channels_last: bool = True,
        compile: bool = False,
    ) -> None:
        """Literature options (all off: the thesis's plain cross-entropy): ``class_rebalancing``
        (Zhang et al.'s weighted cross-entropy, Gaussian ``rebalancing_sigma`` in ab units,
        uniform share ``rebalancing_mix``); ``soft_targets`` k > 0 nearest bins with Gaussian
        weights (``soft_sigma``); ``gamut_classes`` (only bins seen in training are classes);
        ``gray_image_threshold``: training images with no pixel of chroma above it get loss
        weight 0 (instead of being dropped from the data); ``output_stride`` 2 or 4: logits
        at 1/2 or 1/4 of the input size (targets from area-averaged ab), ab upsampled
        bilinearly before it is joined with L.

        ``fused_head_loss`` computes the training loss of the classification head in chunks
        of pixels without materializing the logits (``lit_colorize.head``): the same loss
        and gradients without the (B, K, H, W) logits (README measures it); off, the plain
        ``F.cross_entropy`` over the full logits tensor. ``channels_last`` keeps weights and
        activations in NHWC layout (faster convolutions on CPUs and tensor cores).
        ``compile`` runs the U-Net body through ``torch.compile`` (set up in
        ``configure_model``; the first steps pay for the compilation)."""
        super().__init__()
        # Every option is checked before anything is allocated (see MAX_GRID_SIZE for the bound).
        if head not in ("classification", "regression"):
            raise ConfigError(f"head must be 'classification' or 'regression', got {head!r}")
        if optimizer not in ("adam", "rmsprop"):
            raise ConfigError(f"optimizer must be 'adam' or 'rmsprop', got {optimizer!r}")
        if lr_schedule not in ("constant", "onecycle", "cosine"):
            raise ConfigError(f"lr_schedule must be 'constant', 'onecycle' or 'cosine', got {lr_schedule!r}")
        if head == "regression" and (class_rebalancing or soft_targets or gamut_classes):
            raise ConfigError("class_rebalancing, soft_targets and gamut_classes apply to the classification head only")
        if isinstance(grid_size, bool) or not isinstance(grid_size, int) or not 2 <= grid_size <= MAX_GRID_SIZE:
            raise ConfigError(
                f"grid_size must be an integer from 2 to {MAX_GRID_SIZE} (grid_size**2 ab bins; finer than "
                f"{MAX_GRID_SIZE} the bins are under 2 ab units, too close to tell apart), got {grid_size!r}"
            )
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f"lr must be a finite number > 0, got {lr!r}")
        eval_temperature = check_temperature(eval_temperature, "eval_temperature")
        # Plain lists keep the saved hyperparameters loadable with torch.load(weights_only=True).
        widths = [int(w) for w in widths] if widths else list(widths_from(base_width, depth, width_divider))
        predict_temperatures = check_temperatures(predict_temperatures, "predict_temperatures")
        self.save_hyperparameters()
        num_bins = grid_size * grid_size
        try:
            self.net = UNet(1, num_bins if head == "classification" else 2, widths, activation, output_stride)
        except ValueError as error:  # widths, activation, output_stride: the user's options
            raise ConfigError(str(error)) from error
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        self._compiled_features: Any = None  # set by configure_model when compile=True
        self.color_table = ColorTable(grid_size) if head == "classification" else None
        # Derived from the bin table when it is built (see on_color_table_built); saved with it.
        self.register_buffer("class_weights", torch.ones(num_bins))
        self.register_buffer("class_of_bin", torch.arange(num_bins))
        # Shorter side of the training images, recorded on the first training batch and saved
        # with the weights: at predict time the network sees photos at about this scale.
        self.register_buffer("train_image_size", torch.tensor(0, dtype=torch.long))
        self._train_image_size_recorded = False  # a Python flag: no device sync per batch
        # What predict renders; a prediction writer may set these (see ColorizedPhotoWriter).
        self.predict_temperatures: list[float] = predict_temperatures
        self.working_size: int | None = None

        # nan_strategy="disable": the default NaN check of MeanMetric waits for the device on every
        # update. A non-finite training loss stops the run before its update (see
        # _stop_if_not_finite); a NaN validation loss is reported as NaN rather than dropped.
        self.train_loss = MeanMetric(nan_strategy="disable")
        self.eval_loss = MeanMetric(nan_strategy="disable")
        self._losses_since_update: list[Tensor] = []  # checked for NaN once per optimizer step
        self._warned_diverged = False  # one warning per run when the loss explodes without NaN
        self.train_acc = PixelAccuracy()
        accuracy = {"acc": PixelAccuracy()}
        if head == "classification":
            accuracy["acc_top5"] = PixelAccuracy(top_k=5)
        self.eval_acc = MetricCollection(accuracy, compute_groups=False)  # updated one by one (see _evaluate)
        # Decoded at eval_temperature: ab against the truth's ab, RGB against the truth's RGB.
        self.eval_ab = MetricCollection(
            {"auc": ABErrorAUC(grid_size=grid_size), "auc_rebalanced": ABErrorAUC(rebalanced=True, grid_size=grid_size)},
            compute_groups=False,  # members are logged one by one
        )
        self.eval_rgb = MetricCollection(
            {
                "psnr": PeakSignalNoiseRatio(data_range=1.0),
                "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
                "colorfulness": Colorfulness(),
                "delta_colorfulness": DeltaColorfulness(),
            },
            compute_groups=False,
        )

    @property
    def is_classifier(self) -> bool:
        return self.hparams.head == "classification"

    @property
    def size_multiple(self) -> int:
        return self.net.size_multiple

    @property
    def predict_short_side(self) -> int:
        """Shorter side of the network input at predict time: ``working_size`` if set, else the
        training images' shorter side."""
        return int(self.working_size or int(self.train_image_size) or DEFAULT_WORKING_SIZE)

    def forward(self, l_norm: Tensor) -> Tensor:
        """Network-scaled L (B, 1, H, W) -> bin logits (B, K, H, W) or normalized ab (B, 2, H, W).
        With ``gamut_classes`` the logits of bins never seen in training are -inf."""
        output = self.net.head(self.features(l_norm))
        if self.hparams.gamut_classes and self.is_classifier:
            output = output.masked_fill(~self._in_gamut()[None, :, None, None], float("-inf"))
        return output

    def features(self, l_norm: Tensor) -> Tensor:
        """The U-Net body's output, before the head (compiled when ``compile``)."""
        if self.hparams.channels_last:
            l_norm = l_norm.contiguous(memory_format=torch.channels_last)
        return (self._compiled_features or self.net.features)(l_norm)

    def configure_model(self) -> None:
        """``compile: true``: compile the U-Net body once per process (the fused head and its
        loss stay eager: their chunk loop is already the fast path)."""
        if self.hparams.compile and self._compiled_features is None:
            self._compiled_features = torch.compile(self.net.features)

    def _in_gamut(self) -> Tensor:
        """(K,) True for the bins that are classes (all, unless ``gamut_classes``)."""
        return self.class_of_bin == torch.arange(len(self.class_of_bin), device=self.class_of_bin.device)

    def _head_bias(self) -> Tensor:
        """The head's bias, -inf for bins that are not classes (``gamut_classes``)."""
        bias = self.net.head.bias
        return bias.masked_fill(~self._in_gamut(), float("-inf")) if self.hparams.gamut_classes else bias

    def on_color_table_built(self) -> None:
        """Called by BinColorTable once the table holds the training colors: derive the class
        weights (rebalancing) and the class of each bin (gamut-aware classes)."""
        counts, grid = self.color_table.counts, self.hparams.grid_size
        if self.hparams.class_rebalancing:
            weights = rebalancing_weights(counts, grid, self.hparams.rebalancing_sigma, self.hparams.rebalancing_mix)
            self.class_weights.copy_(weights)
        if self.hparams.gamut_classes:
            self.class_of_bin.copy_(nearest_occupied(counts, grid))

    # --- data on the device -------------------------------------------------------------
    def prepare_batch(self, images: Tensor) -> dict[str, Tensor]:
        """uint8/float RGB on the device -> L input, ab (ab units), bin targets, RGB reference."""
        rgb = to_float_rgb(images)
        l_norm, ab = split_lab(rgb)
        stride = self.hparams.output_stride
        target_ab = ab if stride == 1 else F.avg_pool2d(ab, stride)
        bins = ab_to_bin(target_ab, self.hparams.grid_size)
        return {"rgb": rgb, "l": l_norm, "ab": ab, "target_ab": target_ab, "bins": bins}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> dict[str, Tensor]:
        """Lab and bins on the device; while training, first the datamodule's batch augmentation
        (``datamodule.train_augmentation``, e.g. kornia), applied to RGB so L and ab stay aligned."""
        if is_photo_batch(batch):
            return batch
        images = images_of(batch)
        trainer = self._trainer
        if trainer is not None and trainer.training:
            if not self._train_image_size_recorded:
                self.train_image_size.fill_(min(images.shape[-2:]))
                self._train_image_size_recorded = True
            return self.prepare_training_batch(images, getattr(trainer.datamodule, "train_augmentation", None))
        return self.prepare_batch(images)

    def prepare_training_batch(self, images: Tensor, augmentation: nn.Module | None) -> dict[str, Tensor]:
        """:meth:`prepare_batch` after the batch augmentation, applied to RGB so L and ab stay aligned."""
        if augmentation is not None:
            images = augmentation(to_float_rgb(images)).clamp_(0.0, 1.0)
        return self.prepare_batch(images)

    # --- decoding -----------------------------------------------------------------------
    def decode_ab(self, output: Tensor, temperature: float, bins: Tensor | None = None) -> Tensor:
        """Network output -> ab in ab units, with the configured decoding at ``temperature``.
        ``bins``: the output's argmax when already known (mode/mean decoding needs only it)."""
        if not self.is_classifier:
            return denormalize_ab(output.float().clamp(0.0, 1.0))
        if self.hparams.decoding == "annealed_mean":
            return self.color_table.annealed_mean(output, temperature)
        if bins is None:
            return self.color_table.decode(output, temperature)
        return self.color_table.decode_bins(bins, temperature)

    def predicted_bins(self, output: Tensor) -> Tensor:
        if self.is_classifier:
            return output.argmax(dim=1)
        return ab_to_bin(self.decode_ab(output, 1.0), self.hparams.grid_size)

    @torch.no_grad()
    def predict_ab(self, l_norm: Tensor, temperatures: Sequence[float]) -> list[Tensor]:
        """L (B, 1, H, W) -> ab (B, 2, H, W) in ab units, one per temperature (one forward).

        The thesis's mode/mean decoding needs only each pixel's most likely bin, which the
        head gives chunk by chunk without the (B, K, H, W) logits."""
        if self.is_classifier and self.hparams.decoding == "mode_mean":
            head = self.net.head
            bins = chunked_head_argmax(self.features(l_norm), head.weight, self._head_bias())
            return [self.color_table.decode_bins(bins, t) for t in temperatures]
        output = self(l_norm)
        return [self.decode_ab(output, t) for t in temperatures]

    @torch.no_grad()
    def colorize(self, l_norm: Tensor, temperatures: Sequence[float]) -> Tensor:
        """L (B, 1, H, W) -> RGB in [0, 1] for each temperature, shape (B, len(T), 3, H, W)."""
        size = l_norm.shape[-2:]
        return torch.stack([join_lab(l_norm, upsample_ab(ab, size)) for ab in self.predict_ab(l_norm, temperatures)], dim=1)

    @torch.no_grad()
    def colorize_photo(self, rgb: Tensor, temperatures: Sequence[float], working_size: int | None = None) -> list[Tensor]:
        """A photo of any size (uint8 RGB (3, H, W), color or gray) -> uint8 RGB (3, H, W) per
        temperature: ab predicted at the working size, joined with the photo's own L."""
        short_side = int(working_size or self.predict_short_side)
        return colorize_full_resolution(rgb, self.predict_ab, temperatures, short_side, self.size_multiple)

    # --- steps --------------------------------------------------------------------------
    def _shared_step(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor | None, Tensor]:
        """Loss, network output and predicted bins of a prepared batch. While training with
        ``fused_head_loss`` the logits are never materialized (the output is None)."""
        if self.is_classifier and self.training and self.hparams.fused_head_loss:
            features = self.features(batch["l"])
            head = self.net.head
            loss, predicted = chunked_head_cross_entropy(features, head.weight, self._head_bias(), *self._class_targets(batch))
            return loss, None, predicted
        output = self(batch["l"])
        if self.is_classifier:
            loss = classification_loss(output, *self._class_targets(batch))
        else:
            pixel_loss = F.mse_loss(output, normalize_ab(batch["target_ab"]), reduction="none").mean(dim=1)
            weights = self._image_weights(batch)
            loss = pixel_loss.mean() if weights is None else (pixel_loss * weights[:, None, None]).mean()
        return loss, output, self.predicted_bins(output.detach())

    def _class_targets(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Target bins (B, H, W), or (B, k, H, W) soft-encoded with weights (B, k, H, W); and
        per-pixel loss weights (B, H, W) or None. The thesis's loss: (bins, None, None)."""
        hp = self.hparams
        bins = self.class_of_bin[batch["bins"]] if hp.gamut_classes else batch["bins"]
        target_weights = None
        targets = bins
        if hp.soft_targets:
            indices, target_weights = soft_targets(batch["target_ab"], hp.grid_size, hp.soft_targets, hp.soft_sigma)
            targets = self.class_of_bin[indices]
        pixel_weights = self.class_weights[bins] if hp.class_rebalancing else None
        image_weights = self._image_weights(batch)
        if image_weights is not None:
            image_weights = image_weights[:, None, None].expand_as(bins)
            pixel_weights = image_weights if pixel_weights is None else pixel_weights * image_weights
        return targets, target_weights, pixel_weights

    def _image_weights(self, batch: dict[str, Tensor]) -> Tensor | None:
        """(B,) loss weight 0 for near-gray training images (``gray_image_threshold``), else None."""
        threshold = self.hparams.gray_image_threshold
        if not self.training or threshold is None:
            return None
        return (~near_gray_images(batch["target_ab"], threshold)).float()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _, predicted = self._shared_step(batch)
        self._losses_since_update.append(loss.detach())
        self.train_loss(loss)
        self.train_acc(predicted, batch["bins"])
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def on_train_start(self) -> None:
        self._losses_since_update = []
        self._warned_diverged = False

    @property
    def diverged_loss(self) -> float:
        """A training loss above this means training diverged (see DIVERGED_LOSS_FACTOR)."""
        trivial = math.log(self.hparams.grid_size**2) if self.is_classifier else 0.25
        return DIVERGED_LOSS_FACTOR * trivial

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self._stop_if_not_finite()

    def _stop_if_not_finite(self) -> None:
        """Stop with a clear error, on every process at once, before a NaN reaches the weights.

        Checked after backward, just before the update, over the losses of every batch since
        the last update (all of them when gradients accumulate): the step itself then never
        waits for the device between its forward and backward.
        """
        if not self._losses_since_update:
            return
        losses = torch.stack(self._losses_since_update)
        self._losses_since_update = []
        largest = float(losses.max())  # the one host read: NaN when any is NaN, else inf or the largest
        finite = math.isfinite(largest)
        if finite and largest > self.diverged_loss and not self._warned_diverged:
            self._warned_diverged = True
            rank_zero_warn(
                f"train/loss is {largest:.4g} at global step {self.global_step} (epoch {self.current_epoch}), "
                f"over {DIVERGED_LOSS_FACTOR:g}x that of a model that guesses ({self.diverged_loss / DIVERGED_LOSS_FACTOR:.3g}): "
                f"training has diverged. Lower the learning rate (lr={self.hparams.lr})."
            )
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            bad = losses[~torch.isfinite(losses)]
            value = f"{bad[0].item()}" if len(bad) else "not finite"
            raise NonFiniteLossError(
                f"train/loss is {value} at global step {self.global_step} (epoch {self.current_epoch}) on at "
                f"least one process. Training stopped before this update; the last checkpoint (last.ckpt) is the "
                f"last good state. Lower the learning rate (lr={self.hparams.lr}) or check the data for bad values."
            )

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._set_color_prior()

    def on_test_epoch_start(self) -> None:
        self._set_color_prior()

    def _set_color_prior(self) -> None:
        """The rebalanced AuC weighs pixels by the training colors' prior when the bin table
        holds it; otherwise (regression, no table) by the evaluated pixels' own."""
        if self.is_classifier and bool(self.color_table.built):
            self.eval_ab["auc_rebalanced"].set_prior(self.color_table.counts)

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        loss, output, predicted = self._shared_step(batch)
        # One argmax per batch (in _shared_step) serves the decoding and the top-1 accuracy.
        ab = upsample_ab(self.decode_ab(output, self.hparams.eval_temperature, predicted), batch["ab"].shape[-2:])
        self.eval_loss(loss)
        self.eval_acc["acc"].update(predicted, batch["bins"])
        if self.is_classifier:
            self.eval_acc["acc_top5"].update(output, batch["bins"])
        self.eval_ab.update(ab, batch["ab"])
        self.eval_rgb.update(join_lab(batch["l"], ab), batch["rgb"])
        self.log(f"{stage}/loss", self.eval_loss, prog_bar=True)
        self.log_dict({f"{stage}/{name}": metric for name, metric in self.eval_acc.items()}, prog_bar=True)
        self.log(f"{stage}/psnr", self.eval_rgb["psnr"], prog_bar=True)
        others = {**self.eval_ab, **{name: metric for name, metric in self.eval_rgb.items() if name != "psnr"}}
        self.log_dict({f"{stage}/{name}": metric for name, metric in others.items()})

    def on_predict_start(self) -> None:
        """An untrained classifier has no bin colors: refuse, rather than write orange images."""
        if self.is_classifier:
            require_color_table({"color_table.built": self.color_table.built}, "this model")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Any:
        """Photos (from ``datamodules.Photos``) -> a :class:`ColorizedPhoto` each, at full
        resolution; a training-style batch -> ``{"temperatures", "rgb"}`` at its own size."""
        temperatures = list(self.predict_temperatures)
        if is_photo_batch(batch):  # one photo running out of memory fails alone (see colorize_item)
            return [colorize_item(item, lambda rgb: self.colorize_photo(rgb, temperatures), temperatures) for item in batch]
        return {"temperatures": temperatures, "rgb": self.colorize(batch["l"], temperatures)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, with the fix, a classification checkpoint without a bin color table, except
        when training resumes from it (BinColorTable then builds the table)."""
        state = checkpoint.get("state_dict", {})
        add_missing_buffers(state, self.hparams.grid_size)
        trainer = self._trainer
        resuming = trainer is not None and trainer.state.fn == "fit"
        if self.is_classifier and not resuming:
            require_color_table(state, "this checkpoint")

    def configure_optimizers(self) -> Any:
        """Adam or RMSprop at ``lr``; optionally one-cycle (peak ``lr``) or cosine decay per step."""
        hp = self.hparams
        optimizer_class = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[hp.optimizer]
        optimizer = optimizer_class(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.lr_schedule == "constant":
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        if hp.lr_schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp.lr, total_steps=total_steps)
        else:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def classification_loss(
    logits: Tensor, targets: Tensor, target_weights: Tensor | None = None, pixel_weights: Tensor | None = None
) -> Tensor:
    """Cross-entropy over full logits (B, K, H, W), with the targets of ``_class_targets``:
    the reference that ``chunked_head_cross_entropy`` computes without the logits."""
    if target_weights is None and logits.is_contiguous(memory_format=torch.channels_last):
        # Pixel-major rows are a view of channels_last logits: no copy, contiguous reductions.
        pixel_loss = F.cross_entropy(pixel_major(logits), targets.reshape(-1), reduction="none").view_as(targets)
    elif target_weights is None:
        pixel_loss = F.cross_entropy(logits, targets, reduction="none")
    else:
        pixel_loss = -(target_weights * logits.float().log_softmax(dim=1).gather(1, targets)).sum(dim=1)
    return pixel_loss.mean() if pixel_weights is None else (pixel_loss * pixel_weights).mean()


def upsample_ab(ab: Tensor, size: Sequence[int]) -> Tensor:
    """ab at the network's output size -> ``size`` (bilinear); unchanged when already there."""
    if tuple(ab.shape[-2:]) == tuple(size):
        return ab
    return F.interpolate(ab, size=tuple(size), mode="bilinear", align_corners=False)


def add_missing_buffers(state_dict: dict[str, Any], grid_size: int) -> None:
    """Defaults for buffers that checkpoints written before them lack."""
    num_bins = grid_size * grid_size
    state_dict.setdefault("train_image_size", torch.tensor(0, dtype=torch.long))
    state_dict.setdefault("class_weights", torch.ones(num_bins))
    state_dict.setdefault("class_of_bin", torch.arange(num_bins))


def require_color_table(state_dict: dict[str, Any], source: str) -> None:
    """Raise :class:`MissingColorTableError` unless ``state_dict`` holds a built bin table."""
    built = state_dict.get("color_table.built")
    if built is None or not bool(built):
        raise MissingColorTableError(
            f"{source} is a classification model without a bin color table, so its bins cannot be turned "
            "into colors. Train it with the BinColorTable callback (in every configs/*.yaml), or fine-tune "
            "it for a step with that callback to build the table, then use the new checkpoint."
        )
