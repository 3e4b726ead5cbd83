"""Checkpoint reads that run no code from the file, and writes that a kill cannot tear.

Reads: :func:`read_checkpoint` (``weights_only=True``, one line naming the file for anything
that is not a safe Lightning checkpoint); the Colorizer, the CLI and the shipping script use it.

Lightning's TorchCheckpointIO writes through an fsspec transaction whose temporary file lives
in the system temp folder; when that is another filesystem than the checkpoint folder (a
cluster's local /tmp and a network home, typically), the final move is a copy straight into
``last.ckpt``, and a job killed during it leaves a torn file where the good one was. Here the
temporary file is a sibling of the target, synced to disk, then renamed over it: readers see
the old checkpoint or the new one, never a part.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

from lit_colorize.atomic import atomic_write, remove_stale_partials
from lit_colorize.errors import CheckpointError


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


def _why_unreadable(error: BaseException) -> str:
    """What a failed ``torch.load(weights_only=True)`` means, for a user. Torch's own message is
    never shown: it advises loading with ``weights_only=False``, which would run the file's code."""
    text = str(error)
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if unsafe:
        return (
            f"it holds code to run ({unsafe.group(1)}), which lit-colorize never runs; its checkpoints hold only "
            "tensors and plain data, so this file is not one, or was tampered with"
        )
    if isinstance(error, EOFError) or "central directory" in text or "zip archive" in text:
        return "it is truncated or corrupt (an incomplete copy or download?); copy it again"
    return "it is not a PyTorch checkpoint (corrupt, or another kind of file)"


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """A Lightning checkpoint, read with ``weights_only=True`` (no code from the file runs).
    Raises :class:`CheckpointError`, naming the file and what is wrong, for a missing,
    unreadable, unsafe or foreign file. ``mmap``: map the tensors instead of reading them
    (a cheap look at the contents; a legacy file is read whole)."""
    path = Path(path)
    if not path.is_file():
        if not path.exists():
            raise FileNotFoundError(f"checkpoint {path} not found")
        raise CheckpointError(f"checkpoint {path} is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot use checkpoint {path}: the file is empty")
    checkpoint = None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", module="torch")
        if mmap:
            try:
                checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
            except Exception:  # noqa: BLE001 - a legacy file cannot be mapped: read it below
                checkpoint = None
        if checkpoint is None:
            try:
                checkpoint = torch.load(path, map_location=map_location, weights_only=True)
            except Exception as error:  # noqa: BLE001 - any failure here is the file's
                raise CheckpointError(f"cannot use checkpoint {path}: {_why_unreadable(error)}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(
            f"{path} is a PyTorch file but not a Lightning checkpoint (no state_dict); give a .ckpt that "
            "lit-colorize fit wrote (logs/<project>/<run>/checkpoints/)"
        )
    if "pytorch-lightning_version" not in checkpoint:
        raise CheckpointError(
            f"{path} has a state_dict but is not a Lightning checkpoint (no pytorch-lightning_version); give a "
            ".ckpt that lit-colorize fit wrote (logs/<project>/<run>/checkpoints/)"
        )
    return checkpoint
