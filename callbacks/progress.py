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
from collections import deque
from datetime import timedelta
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.utilities.data import extract_batch_size


def auto_progress_bar(every_n_steps: int = 50, every_n_seconds: float = 60.0, eta_window: int = 100) -> ProgressBar:
    """Rich's bar when stdout is a terminal; else :class:`LogProgressBar` (a line every
    ``every_n_steps`` optimizer steps, or sooner once ``every_n_seconds`` have passed, with an
    ETA from the pace of the last ``eta_window`` steps)."""
    if sys.stdout.isatty():
        return RichProgressBar()
    return LogProgressBar(every_n_steps, every_n_seconds, eta_window=eta_window)


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds))) if math.isfinite(seconds) else "?"


def _number(value: Any) -> str:
    value = float(value)
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


class RecentPace:
    """Seconds per step over the last ``window`` steps.

    A whole-run average carries the slow start (data loader warm-up, the color table pass,
    compilation) for hours: it said "ETA 1:39:11" at step 100 of a run that then went fast.
    Steps that share a mark (accumulated batches) count once.
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"the ETA window must be >= 1 step, got {window}")
        self._marks: deque[tuple[float, int]] = deque(maxlen=window + 1)  # (time, step): window intervals

    def reset(self, now: float, step: int) -> None:
        self._marks.clear()
        self._marks.append((now, step))

    def mark(self, now: float, step: int) -> None:
        if not self._marks or self._marks[-1][1] != step:
            self._marks.append((now, step))

    def seconds_per_step(self) -> float:
        if len(self._marks) < 2:
            return math.inf
        (start, first), (end, last) = self._marks[0], self._marks[-1]
        return (end - start) / (last - first)


class LogProgressBar(ProgressBar):
    """Plain progress lines for logs: ``epoch 3/15 step 240/1260 train/loss 2.345 412 img/s
    ETA 0:01:23`` while training, the validation metrics after each validation, and a line
    every ``every_n_steps`` batches (or ``every_n_seconds``) of a validate, test or predict run.

    Metrics are read only when a line is printed, so the steps in between never wait for the
    device. Images/s counts training batches only (validation time left out); the ETA uses the
    pace of the last ``eta_window`` steps (:class:`RecentPace`), a validation among them included.
    """

    #: The validation metrics are one of its lines: ``lit-colorize validate`` leaves out
    #: Lightning's table of the same numbers (``verbose=False``) when a callback says this.
    prints_validation_metrics = True

    def __init__(
        self, every_n_steps: int = 50, every_n_seconds: float = 60.0, stream: TextIO | None = None, eta_window: int = 100
    ) -> None:
        super().__init__()
        if every_n_steps < 1 or not every_n_seconds > 0:
            raise ValueError(f"every_n_steps must be >= 1 and every_n_seconds > 0, got {every_n_steps}, {every_n_seconds}")
        self.every_n_steps = every_n_steps
        self.every_n_seconds = every_n_seconds
        self._stream = stream
        self._enabled = True
        self._run_start = self._last_line = self._interval_start = 0.0
        self._interval_images = 0
        self._last_step = -1  # the step of the last line: accumulated batches share a step
        self._eval_batches = 0
        self._pace = RecentPace(eta_window)

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
        self._pace.reset(self._run_start, trainer.global_step)
        self._interval_images = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._interval_start, self._interval_images = time.monotonic(), 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._interval_images += extract_batch_size(batch)
        now = time.monotonic()
        self._pace.mark(now, trainer.global_step)
        if not self._enabled or trainer.global_step == self._last_step or not self._due(trainer.global_step):
            return
        total = trainer.estimated_stepping_batches
        remaining = (total - trainer.global_step) * self._pace.seconds_per_step() if math.isfinite(total) else math.inf
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
        if not self._enabled or trainer.state.fn == "fit":
            return
        now = time.monotonic()
        self._pace.mark(now, self._eval_batches)
        if not self._due(self._eval_batches):
            return
        pace = self._pace.seconds_per_step()
        remaining = (total - self._eval_batches) * pace if math.isfinite(total) else math.inf
        counted = f"{self._eval_batches}/{total}" if math.isfinite(total) else f"{self._eval_batches}"
        self.print(f"{stage} batch {counted} {1 / pace if pace > 0 else math.inf:.2f} batches/s ETA {_duration(remaining)}")
        self._last_line = now

    def _on_eval_start(self) -> None:
        self._run_start = self._last_line = time.monotonic()
        self._eval_batches = 0
        self._pace.reset(self._run_start, 0)

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
