"""Show what the model does: gray | original | colorized at several temperatures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from PIL import Image
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from torch import Tensor
from torchvision.utils import make_grid

from lit_colorize.color import gray_rgb
from lit_colorize.module import ColorizationModule
from lit_colorize.paths import run_dir


class SampleGrid(L.Callback):
    """At the end of validation, colorizes a fixed set of validation images.

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

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: dict[str, Tensor],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        # The first validation images seen are kept for the whole run: same images every epoch.
        if dataloader_idx or (self._l is not None and len(self._l) >= self.num_images):
            return
        take = self.num_images - (0 if self._l is None else len(self._l))
        l_new, rgb_new = batch["l"][:take].detach().clone(), batch["rgb"][:take].detach().clone()
        self._l = l_new if self._l is None else torch.cat([self._l, l_new])
        self._rgb = rgb_new if self._rgb is None else torch.cat([self._rgb, rgb_new])

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
