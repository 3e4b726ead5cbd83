"""Writes colorized photos as they are predicted, one file per temperature, never over a file
the user has unless asked to."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image

from lit_colorize.module import ColorizationModule
from lit_colorize.photos import ColorizedPhoto, PhotoItem

ImageFormat = Literal["png", "jpeg"]


def format_temperature(temperature: float) -> str:
    return f"{temperature:g}"


class ColorizedPhotoWriter(BasePredictionWriter):
    """Saves each colorized photo under ``output_dir`` (mirroring the subfolders of a folder
    input) as ``<name><suffix>.png|.jpg``; ``suffix`` may use ``{temperature}``. Predicting
    a training DataModule (e.g. ToyShapes' validation set) writes ``<loader>-<index><suffix>``.

    The writer also says what predict renders: ``temperatures`` (default T=0.8) and
    ``working_size`` (shorter side the network sees; None: the training images' size).
    An existing file, input or output, is never replaced unless ``overwrite``; such a photo
    counts as failed, as does one that could not be read. Failures are reported by path as
    they happen and summed up at the end, over all processes under DDP (each process writes
    its own share; Lightning's predict sampler never repeats a photo); ``total_failures``
    sets the exit status.
    Writes are atomic (temporary file, then rename), so a killed run leaves no half image.
    """

    def __init__(
        self,
        output_dir: str | Path = "colorized",
        temperatures: Sequence[float] = (0.8,),
        working_size: int | None = None,
        suffix: str = "_colorized_T{temperature}",
        image_format: ImageFormat = "png",
        quality: int = 95,
        overwrite: bool = False,
    ) -> None:
        super().__init__(write_interval="batch")
        if image_format not in ("png", "jpeg"):
            raise ValueError(f"image_format must be 'png' or 'jpeg', got {image_format!r}")
        if not 1 <= quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {quality}")
        temperatures = [float(t) for t in ([temperatures] if isinstance(temperatures, (int, float)) else temperatures)]
        if not temperatures or any(t < 0 for t in temperatures):
            raise ValueError(f"temperatures must be a non-empty list of values >= 0, got {temperatures}")
        if len(temperatures) > 1 and "{temperature}" not in suffix:
            raise ValueError(f"with several temperatures the suffix must contain '{{temperature}}', got {suffix!r}")
        self.output_dir = Path(output_dir)
        self.temperatures = temperatures
        self.working_size = working_size
        self.suffix = suffix
        self.image_format = image_format
        self.quality = quality
        self.overwrite = overwrite
        self.written: list[Path] = []
        self.failures: list[str] = []
        self.total_failures = 0  # over all processes, known after predict
        self._claimed: dict[Path, str] = {}

    def output_path(self, photo: ColorizedPhoto, temperature: float) -> Path:
        name = Path(photo.item.path).stem + self.suffix.format(temperature=format_temperature(temperature))
        extension = ".png" if self.image_format == "png" else ".jpg"
        return self.output_dir / photo.item.relative_dir / f"{name}{extension}"

    def on_predict_start(self, trainer: L.Trainer, pl_module: ColorizationModule) -> None:
        pl_module.predict_temperatures = list(self.temperatures)
        pl_module.working_size = self.working_size
        self.written, self.failures, self._claimed = [], [], {}

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if isinstance(prediction, dict):  # a dataset's images (e.g. ToyShapes' validation set)
            prediction = self._dataset_images(prediction, batch_indices, batch_idx, dataloader_idx)
        for photo in prediction:
            if photo.item.error is not None:
                self._fail(photo.item.path, photo.item.error)
                continue
            for temperature, image in zip(photo.temperatures, photo.images):
                self._write(photo, temperature, image)

    @staticmethod
    def _dataset_images(
        prediction: dict[str, Any], batch_indices: Sequence[int] | None, batch_idx: int, dataloader_idx: int
    ) -> list[ColorizedPhoto]:
        """``{"temperatures", "rgb": (B, T, 3, H, W) in [0, 1]}`` -> photos named by dataset index."""
        rgb = prediction["rgb"].mul(255).round_().to(torch.uint8).cpu()
        indices = list(batch_indices) if batch_indices is not None else [batch_idx * len(rgb) + i for i in range(len(rgb))]
        return [
            ColorizedPhoto(PhotoItem(f"{dataloader_idx}-{index:06d}"), prediction["temperatures"], list(images))
            for index, images in zip(indices, rgb)
        ]

    def _write(self, photo: ColorizedPhoto, temperature: float, image: Any) -> None:
        path = self.output_path(photo, temperature)
        source = photo.item.path
        if path in self._claimed:
            self._fail(source, f"its output {path} was already written in this run for {self._claimed[path]}")
            return
        if path.exists() and not self.overwrite:
            self._fail(source, f"{path} exists; pass --overwrite to replace it")
            return
        self._claimed[path] = source
        pixels = image.permute(1, 2, 0).numpy()
        alpha = photo.item.alpha
        if alpha is not None and self.image_format == "png":
            pixels = np.concatenate([pixels, alpha.cpu().permute(1, 2, 0).numpy()], axis=2)
        elif alpha is not None:
            rank_zero_info(f"ColorizedPhotoWriter: {source} has transparency, which JPEG cannot keep; use PNG")
        options = {"quality": self.quality} if self.image_format == "jpeg" else {"compress_level": 6}
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
        try:
            with os.fdopen(descriptor, "wb") as stream:
                Image.fromarray(pixels).save(stream, format=self.image_format.upper(), **options)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self.written.append(path)

    def _fail(self, source: str, reason: str) -> None:
        message = f"{source}: {reason}"
        self.failures.append(message)
        print(f"ColorizedPhotoWriter: FAILED {message}", flush=True)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Sum up over all processes (each wrote its own share of the photos)."""
        counts = torch.tensor([len(self.written), len(self.failures)], dtype=torch.float64, device=pl_module.device)
        if trainer.world_size > 1:
            counts = trainer.strategy.reduce(counts, reduce_op="sum")
        written, self.total_failures = (int(c) for c in counts.tolist())
        ranks = f" by {trainer.world_size} processes" if trainer.world_size > 1 else ""
        summary = f"ColorizedPhotoWriter: wrote {written} images to {self.output_dir}{ranks}"
        if self.total_failures:
            summary += f"; {self.total_failures} failed"
            if self.failures:
                summary += " (this process's:)\n  " + "\n  ".join(self.failures)
        if trainer.is_global_zero or self.failures:
            print(summary, flush=True)
