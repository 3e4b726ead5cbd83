"""Checkpoint writes that a kill cannot tear.

Lightning's TorchCheckpointIO writes through an fsspec transaction whose temporary file lives
in the system temp folder; when that is another filesystem than the checkpoint folder (a
cluster's local /tmp and a network home, typically), the final move is a copy straight into
``last.ckpt``, and a job killed during it leaves a torn file where the good one was. Here the
temporary file is a sibling of the target, synced to disk, then renamed over it: readers see
the old checkpoint or the new one, never a part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

from lit_colorize.atomic import atomic_write, remove_stale_partials


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local saves are atomic (sibling temp file, fsync, rename)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options, got {storage_options!r}")
        if not isinstance(get_filesystem(path), type(get_filesystem("."))):  # a remote URL: fsspec's own way
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target) as stream:
            torch.save(checkpoint, stream)
        remove_stale_partials(target.parent, recursive=False)  # left by killed processes


def use_atomic_checkpoints(strategy: Any) -> None:
    """Give ``strategy`` atomic saves unless the user configured their own CheckpointIO."""
    current: CheckpointIO = strategy.checkpoint_io
    if type(current) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()
