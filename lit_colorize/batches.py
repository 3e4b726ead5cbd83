"""What travels from the data to the model: the batch shapes, and the one contract by which a
DataModule gives the model its training augmentation (the model never guesses at attributes).

Training and evaluation batches are uint8 RGB in any of three shapes (a tensor, an
``(images, ...)`` tuple, a dict with ``"image"``); after the transfer the module turns them
into a :class:`PreparedBatch` on the device. Predict batches of photos are lists of
:class:`~lit_colorize.prediction.PhotoItem` and stay as they are.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_colorize.bins import ab_to_bin
from lit_colorize.color import split_lab, to_float_rgb
from lit_colorize.global_hints import GlobalHintSampling, sample_global_hints
from lit_colorize.hints import HintSampling, sample_hints
from lit_colorize.prediction import is_photo_batch  # noqa: F401 - part of the batch contract


class PreparedBatch(TypedDict):
    """A batch on the device, ready for the loss and the metrics."""

    rgb: Tensor  # (B, 3, H, W) float RGB in [0, 1]: the reference for RGB metrics
    l: Tensor  # (B, 1, H, W) network-scaled L: the input
    ab: Tensor  # (B, 2, H, W) the true ab, in ab units, at the input size
    target_ab: Tensor  # ab at the output size (area-averaged when output_stride > 1)
    bins: Tensor  # (B, h, w) long: the ab bin of each output pixel, the class target
    index: NotRequired[Tensor]  # (B,) dataset index of each image, when the loader gives it (predict)
    hints: NotRequired[Tensor]  # (B, 3, H, W) simulated hint ab and mask (user-guided models, training)
    global_hint: NotRequired[Tensor]  # (B, Q + 2) simulated global hint vectors (global-hints models, training)


class ColorizationDataModule(L.LightningDataModule):
    """Base of the training DataModules. ``train_augmentation`` (None: none) is applied by the
    module to whole training batches on the device, to RGB, before Lab conversion, so L and
    ab stay aligned; it maps float RGB (B, 3, H, W) in [0, 1] to the same."""

    train_augmentation: nn.Module | None = None

    def val_classes(self) -> Tensor | None:
        """The class of each validation image (N,), for views that should cover every class
        (the sample grid); None when the set has no classes."""
        return None


def train_augmentation_of(datamodule: Any) -> nn.Module | None:
    """The augmentation a DataModule declares (see :class:`ColorizationDataModule`); None for others."""
    return datamodule.train_augmentation if isinstance(datamodule, ColorizationDataModule) else None


def images_of(batch: Any) -> Tensor:
    """The RGB images of a datamodule batch: a tensor, the first item of a tuple, or ``batch["image"]``."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, dict) and "image" in batch:
        return batch["image"]
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    raise TypeError(f"a batch must be an RGB tensor, a (images, ...) tuple or a dict with 'image'; got {type(batch)}")


def prepare_batch(images: Tensor, grid_size: int, output_stride: int = 1) -> PreparedBatch:
    """uint8/float RGB on the device -> L input, ab (ab units), bin targets, RGB reference."""
    rgb = to_float_rgb(images)
    l_norm, ab = split_lab(rgb)
    target_ab = ab if output_stride == 1 else F.avg_pool2d(ab, output_stride)
    return PreparedBatch(rgb=rgb, l=l_norm, ab=ab, target_ab=target_ab, bins=ab_to_bin(target_ab, grid_size))


def simulate_hints(
    batch: PreparedBatch, grid_size: int, local: HintSampling | None, global_: GlobalHintSampling | None
) -> PreparedBatch:
    """A training batch with the hints its model takes simulated from its truth, on the device:
    local hint channels (:mod:`lit_colorize.hints`) and global hint vectors (:mod:`lit_colorize.global_hints`)."""
    if local is not None:
        batch["hints"] = torch.cat(sample_hints(batch["ab"], local), dim=1)
    if global_ is not None:
        batch["global_hint"] = sample_global_hints(batch["ab"], grid_size, global_)
    return batch
