"""Show what the model does: gray | original | colorized at several temperatures."""

from __future__ import annotations

from collections.abc import Sequence, Sized

import lightning as L
import torch
import torch.nn.functional as F
from PIL import Image
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from torch import Tensor
from torchvision.utils import make_grid

from lit_colorize.batches import ColorizationDataModule, images_of
from lit_colorize.color import gray_rgb
from lit_colorize.module import ColorizationModule
from lit_colorize.paths import run_dir


class SampleGrid(L.Callback):
    """At the end of validation, colorizes a fixed set of validation images, chosen once per run
    (:func:`spread_indices`: spread over the set and over its classes).

    Each row is one image: gray | original | one column per temperature. The grid goes to
    the active logger (a W&B image, a TensorBoard image) and to
    ``<run dir>/samples/epoch=NNN-step=NNNNN.png`` for users without W&B. Small images are
    upscaled (nearest neighbour) to ``min_tile_size`` pixels so they can be seen.
    """

    def __init__(
        self,
        num_images: int = 8,
        temperatures: Sequence[float] = (0.0, 0.8, 1.0),
        every_n_epochs: int = 1,
        min_tile_size: int = 96,
        key: str = "val/samples",
    ) -> None:
        if num_images < 1 or every_n_epochs < 1:
            raise ValueError("num_images and every_n_epochs must be >= 1")
        self.num_images = num_images
        self.temperatures = [float(t) for t in temperatures]
        self.every_n_epochs = every_n_epochs
        self.min_tile_size = min_tile_size
        self.key = key
        self._l: Tensor | None = None
        self._rgb: Tensor | None = None

    @property
    def columns(self) -> list[str]:
        return ["gray", "original", *(f"T={t:g}" for t in self.temperatures)]

    def on_validation_start(self, trainer: L.Trainer, pl_module: ColorizationModule) -> None:
        """Pick the images once per run: spread over the validation set and, where it has
        classes, over every class (the first images of a sorted set are often one class)."""
        if self._l is not None or not trainer.is_global_zero:
            return
        loaders = trainer.val_dataloaders
        dataset = getattr(loaders[0] if isinstance(loaders, list) else loaders, "dataset", None)
        if not isinstance(dataset, Sized) or len(dataset) == 0:
            return
        datamodule = trainer.datamodule
        classes = datamodule.val_classes() if isinstance(datamodule, ColorizationDataModule) else None
        indices = spread_indices(self.num_images, len(dataset), classes)
        images = torch.stack([images_of(dataset[index]) for index in indices]).to(pl_module.device)
        batch = pl_module.prepare_batch(images)
        self._l, self._rgb = batch["l"], batch["rgb"]

    def make_grid(self, pl_module: ColorizationModule) -> Tensor:
        """uint8 grid (3, H, W) for the kept images."""
        l_norm, rgb = self._l.to(pl_module.device), self._rgb.to(pl_module.device)
        colorized = pl_module.net.colorize(l_norm, self.temperatures)  # (N, T, 3, H, W)
        tiles = torch.cat([gray_rgb(l_norm)[:, None], rgb[:, None], colorized], dim=1).flatten(0, 1)
        scale = max(1, -(-self.min_tile_size // tiles.shape[-1]))
        if scale > 1:
            tiles = F.interpolate(tiles, scale_factor=scale, mode="nearest")
        grid = make_grid(tiles.float().cpu(), nrow=len(self.columns), padding=2, pad_value=1.0)
        return grid.mul(255).round().clamp(0, 255).to(torch.uint8)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: ColorizationModule) -> None:
        if trainer.sanity_checking or self._l is None or not trainer.is_global_zero:
            return
        if trainer.current_epoch % self.every_n_epochs:
            return
        grid = self.make_grid(pl_module)
        folder = run_dir(trainer) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = grid.permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(folder / f"epoch={trainer.current_epoch:03d}-step={trainer.global_step:06d}.png")
        caption = " | ".join(self.columns)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(self.key, [pixels], step=trainer.global_step, caption=[caption])
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(self.key, grid, trainer.global_step)


def spread_indices(count: int, length: int, classes: Tensor | None = None) -> list[int]:
    """``count`` indices of a set of ``length`` items, evenly spaced over it; with ``classes``
    (the class of each item), taken from the classes in turn and evenly spaced within each,
    so every class shows before any class shows twice."""
    count = min(count, length)
    if classes is None:
        return torch.linspace(0, length - 1, count).round().long().tolist()
    members = [torch.nonzero(classes == label).flatten() for label in classes.unique()]
    quotas = [0] * len(members)
    while sum(quotas) < count:
        for k, indices in enumerate(members):
            if quotas[k] < len(indices) and sum(quotas) < count:
                quotas[k] += 1
    picked = [
        indices[torch.linspace(0, len(indices) - 1, quota).round().long()].tolist() if quota else []
        for indices, quota in zip(members, quotas)
    ]
    return [picked[k][row] for row in range(max(quotas)) for k in range(len(members)) if row < len(picked[k])]
