"""Progress that a terminal and a log file can both show.

Rich's bar redraws one line in place: in a terminal that is the best view, but with the output
redirected to a file (a cluster job, ``nohup``, ``| tee``) it draws nothing until the run ends.
:func:`auto_progress_bar` picks Rich's bar for a terminal and :class:`LogProgressBar` otherwise,
which prints plain lines (epoch, step, loss, images/s, ETA) every N steps or seconds.
"""

from __future__ import annotations

import math
import sys
import time
from datetime import timedelta
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.utilities.data import extract_batch_size


def auto_progress_bar(every_n_steps: int = 50, every_n_seconds: float = 60.0) -> ProgressBar:
    """Rich's bar when stdout is a terminal; else :class:`LogProgressBar` (a line every
    ``every_n_steps`` optimizer steps, or sooner once ``every_n_seconds`` have passed)."""
    if sys.stdout.isatty():
        return RichProgressBar()
    return LogProgressBar(every_n_steps, every_n_seconds)


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds))) if math.isfinite(seconds) else "?"


def _number(value: Any) -> str:
    value = float(value)
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


class LogProgressBar(ProgressBar):
    """Plain progress lines for logs: ``epoch 3/15 step 240/1260 train/loss 2.345 412 img/s
    ETA 0:01:23`` while training, the validation metrics after each validation, and a line
    every ``every_n_steps`` batches (or ``every_n_seconds``) of a validate, test or predict run.

    Metrics are read only when a line is printed, so the steps in between never wait for the
    device. Images/s counts training batches only (validation time left out); the ETA uses the
    whole run's pace, validation included.
    """

    def __init__(self, every_n_steps: int = 50, every_n_seconds: float = 60.0, stream: TextIO | None = None) -> None:
        super().__init__()
        if every_n_steps < 1 or not every_n_seconds > 0:
            raise ValueError(f"every_n_steps must be >= 1 and every_n_seconds > 0, got {every_n_steps}, {every_n_seconds}")
        self.every_n_steps = every_n_steps
        self.every_n_seconds = every_n_seconds
        self._stream = stream
        self._enabled = True
        self._run_start = self._last_line = self._interval_start = 0.0
        self._interval_images = 0
        self._run_start_step = 0
        self._last_step = -1  # the step of the last line: accumulated batches share a step
        self._eval_batches = 0

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self._enabled:
            print(*args, file=self.stream, flush=True, **kwargs)

    def _due(self, count: int) -> bool:
        return count % self.every_n_steps == 0 or time.monotonic() - self._last_line >= self.every_n_seconds

    # --- training -------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._run_start = self._last_line = self._interval_start = time.monotonic()
        self._run_start_step = trainer.global_step
        self._interval_images = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._interval_start, self._interval_images = time.monotonic(), 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._interval_images += extract_batch_size(batch)
        if not self._enabled or trainer.global_step == self._last_step or not self._due(trainer.global_step):
            return
        now = time.monotonic()
        total = trainer.estimated_stepping_batches
        done = trainer.global_step - self._run_start_step
        pace = (now - self._run_start) / done if done else math.inf
        remaining = (total - trainer.global_step) * pace if math.isfinite(total) else math.inf
        images_per_second = self._interval_images / max(now - self._interval_start, 1e-9)
        steps = f"{trainer.global_step}/{total}" if math.isfinite(total) else f"{trainer.global_step}"
        epochs = f"{trainer.current_epoch}/{trainer.max_epochs - 1}" if trainer.max_epochs and trainer.max_epochs > 0 else f"{trainer.current_epoch}"
        loss = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k.startswith("train/loss") and not k.endswith("_epoch")}
        shown = " ".join(f"{name.removesuffix('_step')} {_number(value)}" for name, value in loss.items())
        fields = [f"epoch {epochs}", f"step {steps}", shown, f"{images_per_second:.0f} img/s", f"ETA {_duration(remaining)}"]
        self.print(" ".join(field for field in fields if field))
        self._last_line, self._interval_start, self._interval_images = now, now, 0
        self._last_step = trainer.global_step

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        if metrics:
            where = f"epoch {trainer.current_epoch} step {trainer.global_step} " if trainer.training or trainer.state.fn == "fit" else ""
            self.print(f"{where}validation: " + " ".join(f"{k} {_number(v)}" for k, v in sorted(metrics.items())))
        self._last_line = self._interval_start = time.monotonic()
        self._interval_images = 0

    # --- validate, test and predict runs --------------------------------------------------
    def _on_eval_batch(self, trainer: L.Trainer, stage: str, total: float) -> None:
        self._eval_batches += 1
        if not self._enabled or trainer.state.fn == "fit" or not self._due(self._eval_batches):
            return
        now = time.monotonic()
        pace = (now - self._run_start) / self._eval_batches
        remaining = (total - self._eval_batches) * pace if math.isfinite(total) else math.inf
        counted = f"{self._eval_batches}/{total}" if math.isfinite(total) else f"{self._eval_batches}"
        self.print(f"{stage} batch {counted} {1 / pace:.2f} batches/s ETA {_duration(remaining)}")
        self._last_line = now

    def _on_eval_start(self) -> None:
        self._run_start = self._last_line = time.monotonic()
        self._eval_batches = 0

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != "fit":
            self._on_eval_start()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._on_eval_start()

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._on_eval_start()

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._on_eval_batch(trainer, "validate", self.total_val_batches)

    def on_test_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._on_eval_batch(trainer, "test", sum(trainer.num_test_batches))

    def on_predict_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._on_eval_batch(trainer, "predict", sum(trainer.num_predict_batches))

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled:
            self.print(f"predict: {self._eval_batches} batches in {_duration(time.monotonic() - self._run_start)}")
