"""Checkpoints for runs that get killed: ``last.ckpt`` kept fresh and always the last state,
saved on SIGTERM, never replaced after a non-finite loss or a failed restore, and never
written into a finished run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from lit_colorize.checkpoint_io import use_atomic_checkpoints
from lit_colorize.divergence import NonFiniteLossError
from lit_colorize.resume import FinishedRunError, finished_error, mark_finished, read_finished


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint (best ``monitor`` top-k plus ``last.ckpt``) for preemptible jobs.

    It overrides ModelCheckpoint's private ``_save_last_checkpoint`` and reads its
    ``_last_global_step_saved``, which Lightning may change in any release: pyproject.toml pins
    Lightning to the minor release these tests ran with (2.6).

    * ``last.ckpt`` is the last state: it is written at every validation (or epoch end without
      validation) whether or not a top-k checkpoint was, and at the end of training. Lightning
      2.6 writes it there only after a top-k save, so a run whose ``monitor`` stops improving
      would keep an old ``last.ckpt``.
    * ``last.ckpt`` is also refreshed every ``last_every_n_train_steps`` optimizer steps, so
      a SIGKILL mid-epoch loses at most that many steps (``lit-colorize fit --ckpt_path last``
      resumes). A refresh never blocks a top-k save of the same step: Lightning skips any save
      at a step it already saved at, which dropped the best checkpoint whenever a validation
      ended on a refresh step.
    * On an exception, SIGTERM included (Lightning turns it into ``SIGTERMException``), the
      state is saved to ``last.ckpt`` before the process exits, but only once this process
      has completed a training batch: a crash while restoring, or in the first step after
      it, leaves the checkpoint it started from as it was.
    * After a :class:`NonFiniteLossError` nothing is saved: the last good ``last.ckpt`` stays.
    * A fit that returns normally marks its folder finished (``finished.json``); a fit never
      sets up in a finished folder, so no other process writes a finished run's checkpoints
      (see :mod:`lit_colorize.resume`).
    * Saves are atomic (:class:`~lit_colorize.checkpoint_io.AtomicCheckpointIO`, set up
      unless another CheckpointIO is configured): a kill during a save leaves the previous
      ``last.ckpt`` whole (tested in ``tests/test_faults.py``).
    """

    def __init__(
        self,
        *args: Any,
        save_last: bool | Literal["link"] | None = True,
        save_on_exception: bool = True,
        last_every_n_train_steps: int | None = 100,
        **kwargs: Any,
    ) -> None:
        # Explicit parameters (not kwargs.setdefault): the CLI passes every ModelCheckpoint
        # argument it knows, with ModelCheckpoint's own defaults otherwise.
        super().__init__(*args, save_last=save_last, save_on_exception=save_on_exception, **kwargs)
        if last_every_n_train_steps is not None and last_every_n_train_steps < 1:
            raise ValueError(f"last_every_n_train_steps must be None or >= 1, got {last_every_n_train_steps}")
        self.last_every_n_train_steps = last_every_n_train_steps
        self._fitting = False
        self._last_ckpt_step: int | None = None  # global step of the state last.ckpt holds, this process
        self._last_ckpt_writes = 0
        self._batches_done_here = 0
        self._finished = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        use_atomic_checkpoints(trainer.strategy)
        super().setup(trainer, pl_module, stage)
        self._fitting = stage == "fit"
        if self._fitting:
            self._last_ckpt_step, self._batches_done_here, self._finished = None, 0, False
            recorded = read_finished(self.dirpath) if self.dirpath and not trainer.fast_dev_run else None
            if recorded is not None:
                raise FinishedRunError(f"RunCheckpoint: {finished_error(Path(self.dirpath), recorded)}")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # validate/test/predict restore weights only; the run's best/last bookkeeping (and
        # Lightning's "dirpath has changed" warning about it) matter to a fit alone.
        if self._fitting:
            super().load_state_dict(state_dict)

    def _can_save(self, trainer: L.Trainer) -> bool:
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        return bool(self.save_last) and fitting and not trainer.fast_dev_run

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Tensor]) -> None:
        # Lightning records every save in _last_global_step_saved and skips the top-k save of a
        # step already saved; last.ckpt keeps its own record so the two never block each other.
        topk_step = self._last_global_step_saved
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._last_global_step_saved = topk_step
        if self.save_last:
            self._last_ckpt_step = trainer.global_step
            self._last_ckpt_writes += 1

    def _save_last_if_missed(self, trainer: L.Trainer, writes_before: int) -> None:
        if self._last_ckpt_writes == writes_before and self._can_save(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        self._batches_done_here += 1
        every = self.last_every_n_train_steps
        due = every and trainer.global_step % every == 0 and self._last_ckpt_step != trainer.global_step
        if due and self._can_save(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writes_before = self._last_ckpt_writes
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):  # where Lightning checkpoints: after validation
            self._save_last_if_missed(trainer, writes_before)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writes_before = self._last_ckpt_writes
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):  # no validation after this epoch
            self._save_last_if_missed(trainer, writes_before)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._last_ckpt_step != trainer.global_step and self._can_save(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))  # e.g. max_steps mid-epoch
        if self.dirpath and not trainer.fast_dev_run:
            self._finished = True
            if trainer.is_global_zero:
                mark_finished(self.dirpath, trainer.global_step, trainer.current_epoch)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, NonFiniteLossError):
            last = self.last_model_path or "last.ckpt"
            rank_zero_info(f"RunCheckpoint: not saving after a non-finite loss; {last} is the last good state")
            return
        if not self._fitting or self._finished or not self.save_on_exception or not self._can_save(trainer):
            return
        if self._batches_done_here == 0 or self._last_ckpt_step == trainer.global_step:
            return  # nothing this process trained (a failed restore included), or already saved
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        rank_zero_info(f"RunCheckpoint: {type(exception).__name__} at step {trainer.global_step}; saved {self.last_model_path}")
