"""Small builders shared by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from callbacks import BinColorTable
from datamodules import ToyShapes
from lit_colorize import ColorizationModule


def tiny_toyshapes(**kwargs: Any) -> ToyShapes:
    return ToyShapes(**{"num_train": 128, "num_val": 64, "batch_size": 32, **kwargs})


def quick_trainer(root: Path, **kwargs: Any) -> L.Trainer:
    """A CPU trainer with no logger output or progress bar, writing under ``root``."""
    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        callbacks=[BinColorTable()],
    )
    return L.Trainer(**{**defaults, **kwargs})


def fitted_module(root: Path, **module_kwargs: Any) -> tuple[ColorizationModule, ToyShapes, L.Trainer]:
    module = ColorizationModule(**module_kwargs)
    datamodule = tiny_toyshapes()
    trainer = quick_trainer(root, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(module, datamodule)
    return module, datamodule, trainer
