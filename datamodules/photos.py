"""Photos: a user's photo (and video) files and folders, for ``lit-colorize predict`` at full resolution."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from datamodules.base import check_loader_options
from lit_colorize.outputs import DEFAULT_SUFFIX, PredictSetupError
from lit_colorize.photo_files import PhotoDataset, collate_photos


class Photos(L.LightningDataModule):
    """Predict-only: every photo of ``inputs`` (files, or folders searched recursively; one path
    alone is a list of one), decoded
    at full resolution in the loader workers. Batches are lists of photos of any size; an
    unreadable file travels as an error item, so the writer reports it and the run goes on.
    A video travels as an item without pixels: the writer streams it through the model
    (decoding a whole video in a loader worker would hold it in memory).

    ``hints``: a JSON file mapping photo paths to color hints (a user-guided model; a photo's
    ``<name>.hints.json`` beside it is read too; a video's are keyframe hints). ``reference``: a
    photo whose colors are every photo's and video's global hint (a model trained with
    ``global_hints: true``); or ``palette``, a list of colors (``'["#2a6fdb", "#c8a27a"]'``) with
    ``palette_weights``; a photo's own ``<name>.reference.json`` wins (lit_colorize/photo_files.py). ``output_dir`` and ``output_suffix`` are the writer's (``lit-colorize predict`` sets them
    from ``--writer.*``): a folder search skips that folder and every file named like an
    output or a temporary file of predict, so outputs are never read back as photos.
    """

    def __init__(
        self,
        inputs: list[str | Path] | str | Path | None = None,
        batch_size: int = 1,
        num_workers: int = 0,
        output_dir: str | Path | None = None,
        output_suffix: str = DEFAULT_SUFFIX,
        hints: str | Path | None = None,
        reference: str | Path | None = None,
        palette: list | None = None,
        palette_weights: list[float] | None = None,
    ) -> None:
        check_loader_options(batch_size, num_workers)
        super().__init__()
        self.save_hyperparameters()
        if isinstance(inputs, (str, Path)):  # --data.inputs old_photo.jpg, without brackets: a list of one
            self.hparams.inputs = [inputs]
        self.dataset: PhotoDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if stage not in (None, "predict"):
            raise ValueError(
                f"Photos is for `lit-colorize predict` only (it has no colors to learn from); got stage {stage!r}. "
                "Train with ToyShapes, CIFAR100Subset or Landscape."
            )
        if not self.hparams.inputs:
            raise PredictSetupError("no inputs: pass photo files or folders with --data.inputs '[photo.jpg, folder/]'")
        self.dataset = PhotoDataset(
            self.hparams.inputs, self.hparams.output_dir, self.hparams.output_suffix, self.hparams.hints, announce_hints=True,
            reference=self.hparams.reference, palette=self.hparams.palette, palette_weights=self.hparams.palette_weights,
        )

    def predict_dataloader(self) -> DataLoader:
        if self.dataset is None:
            raise RuntimeError("Photos.setup() has not run yet")
        return DataLoader(
            self.dataset,
            batch_size=self.hparams.batch_size,
            shuffle=False,
            num_workers=self.hparams.num_workers,
            collate_fn=collate_photos,
        )
