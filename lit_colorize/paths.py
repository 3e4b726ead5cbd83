"""Where a run's files go: one folder per run, beside its checkpoints."""

from __future__ import annotations

from pathlib import Path

import lightning as L


def run_dir(trainer: L.Trainer) -> Path:
    """The run's folder: the parent of its checkpoint folder (``<save_dir>/<name>/<version>``).

    Sample grids and the resolved config live there too, so one folder holds everything a
    user needs to look at a run, with or without W&B.
    """
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and getattr(checkpoint, "dirpath", None):
        return Path(checkpoint.dirpath).parent
    logger = trainer.logger
    if logger is not None and logger.save_dir:
        version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
        return Path(logger.save_dir, str(logger.name or ""), version)
    return Path(trainer.default_root_dir)


def free_path(path: Path) -> Path:
    """``path`` if nothing is there yet, else ``stem-1.suffix``, ``stem-2.suffix``...: never overwrite."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
