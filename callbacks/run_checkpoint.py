"""Checkpoints for runs that get killed: ``last.ckpt`` kept fresh, saved on SIGTERM, never
replaced after a non-finite loss."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info

from lit_colorize.checkpoint_io import use_atomic_checkpoints
from lit_colorize.module import NonFiniteLossError


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint (best ``monitor`` top-k plus ``last.ckpt``) for preemptible jobs.

    * ``last.ckpt`` is also refreshed every ``last_every_n_train_steps`` optimizer steps, so
      a SIGKILL mid-epoch loses at most that many steps (``lit-colorize fit --ckpt_path last``
      resumes).
    * On an exception, SIGTERM included (Lightning turns it into ``SIGTERMException``), the
      state is saved to ``last.ckpt`` before the process exits.
    * After a :class:`NonFiniteLossError` nothing is saved: the last good ``last.ckpt`` stays.

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

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        use_atomic_checkpoints(trainer.strategy)
        super().setup(trainer, pl_module, stage)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        every = self.last_every_n_train_steps
        if every and self.save_last and trainer.global_step % every == 0 and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, NonFiniteLossError):
            rank_zero_info(f"RunCheckpoint: not saving after a non-finite loss; {self.last_model_path or 'last.ckpt'} is the last good state")
            return
        if not self._should_save_on_exception(trainer):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        rank_zero_info(f"RunCheckpoint: {type(exception).__name__} at step {trainer.global_step}; saved {self.last_model_path}")
