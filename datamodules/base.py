"""What every training DataModule here shares: a train and a validation set of uint8 images,
loaders, and the declared device-side training augmentation (``train_augmentation``)."""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader, Dataset

from lit_colorize.batches import ColorizationDataModule, images_of
from lit_colorize.errors import ConfigError


def check_loader_options(batch_size: int, num_workers: int) -> None:
    """Called first in each datamodule's ``__init__``: a bad value fails there, in one line,
    rather than in the DataLoader after the model has been built."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers must be an integer >= 0 (0: load in the main process), got {num_workers!r}")


class IndexedImages(Dataset):
    """``{"image", "index"}`` per sample of ``dataset``: predict names each output by its
    image's index in the set, right under DDP too (each process sees its own share)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": images_of(self.dataset[index]), "index": index}


class ImageDataModule(ColorizationDataModule):
    """Subclasses fill ``train_set`` and ``val_set`` in ``setup``, save ``batch_size`` and
    ``num_workers`` as hyperparameters, and may set ``train_augmentation``; test uses the
    validation set, and so does predict, with each image's index."""

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
        return self._loader(None if self.val_set is None else IndexedImages(self.val_set), train=False)
