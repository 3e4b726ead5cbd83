"""What every DataModule here shares: a train and a validation set of uint8 images, and loaders."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, Dataset

from lit_colorize.errors import ConfigError


def check_loader_options(batch_size: int, num_workers: int) -> None:
    """Called first in each datamodule's ``__init__``: a bad value fails there, in one line,
    rather than in the DataLoader after the model has been built."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers must be an integer >= 0 (0: load in the main process), got {num_workers!r}")


class ImageDataModule(L.LightningDataModule):
    """Subclasses fill ``train_set`` and ``val_set`` in ``setup`` and save ``batch_size`` and
    ``num_workers`` as hyperparameters; test and predict use the validation set."""

    train_set: Dataset | None = None
    val_set: Dataset | None = None

    def _loader(self, dataset: Dataset | None, train: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not run yet")
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=train,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return self.val_dataloader()
