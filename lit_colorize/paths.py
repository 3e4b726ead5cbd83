"""Where a run's files go: one folder per run, beside its checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info


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


RUN_WRITING_CALLBACKS = ("SampleGrid",)  # callbacks whose only job is to write into a run folder


def evaluate_without_a_run(config: Any, subcommand: str) -> None:
    """Make ``validate``/``test`` write nothing: no logger run, no sample grid (and the CLI saves
    no config for them).

    Evaluating a checkpoint is a look at a finished state, not a new training run. Logging it
    into a new run made a run folder, an offline W&B run and a step-0 sample grid per call;
    logging it into the checkpoint's own run would put evaluation metrics at step 0 of that
    run's charts. The metrics are printed, which is what the call is for.
    """
    trainer = config.trainer
    trainer.logger = False
    callbacks = trainer.get("callbacks") or []
    trainer.callbacks = [c for c in callbacks if not str(getattr(c, "class_path", "")).endswith(RUN_WRITING_CALLBACKS)]
    checkpoint = config.get("ckpt_path") or "the model as configured (no --ckpt_path)"
    rank_zero_info(
        f"lit-colorize {subcommand}: evaluating {checkpoint}; the metrics are printed below, nothing is logged or written"
    )
