"""Stop training, with the fix, before a NaN or infinite loss reaches the weights; warn once
when the loss explodes while still finite."""

from __future__ import annotations

import math

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from lit_colorize.errors import UserError

# A training loss this many times that of the trivial prediction (every bin equally likely:
# log K; for regression a constant mid-range ab: MSE at most 0.25) means training diverged.
DIVERGED_LOSS_FACTOR = 10.0


class NonFiniteLossError(UserError, FloatingPointError):
    """The training loss became NaN or infinite; raised before the update, so no weight is spoiled."""


class DivergenceGuard:
    """Collects the training losses since the last optimizer step and checks them just before
    the next one (after backward): the step itself never waits for the device between its
    forward and backward, and with gradient accumulation every accumulated batch is checked."""

    def __init__(self, trivial_loss: float) -> None:
        self.trivial_loss = trivial_loss
        self.losses: list[Tensor] = []
        self.warned = False  # one warning per run when the loss explodes without NaN

    @property
    def diverged_loss(self) -> float:
        """A training loss above this means training diverged (see DIVERGED_LOSS_FACTOR)."""
        return DIVERGED_LOSS_FACTOR * self.trivial_loss

    def reset(self) -> None:
        self.losses, self.warned = [], False

    def record(self, loss: Tensor) -> None:
        self.losses.append(loss.detach())

    def check(self, trainer: L.Trainer | None, global_step: int, epoch: int, lr: float) -> None:
        """Raise :class:`NonFiniteLossError` on every process at once when any recorded loss
        is not finite; warn once when one is finite but above :attr:`diverged_loss`."""
        if not self.losses:
            return
        losses = torch.stack(self.losses)
        self.losses = []
        largest = float(losses.max())  # the one host read: NaN when any is NaN, else inf or the largest
        finite = math.isfinite(largest)
        where = f"at global step {global_step} (epoch {epoch})"
        if finite and largest > self.diverged_loss and not self.warned:
            self.warned = True
            rank_zero_warn(
                f"train/loss is {largest:.4g} {where}, over {DIVERGED_LOSS_FACTOR:g}x that of a model that guesses "
                f"({self.trivial_loss:.3g}): training has diverged. Lower the learning rate (lr={lr})."
            )
        if trainer is not None and trainer.world_size > 1:
            finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            bad = losses[~torch.isfinite(losses)]
            value = f"{bad[0].item()}" if len(bad) else "not finite"
            raise NonFiniteLossError(
                f"train/loss is {value} {where} on at least one process. Training stopped before this update; "
                f"the last checkpoint (last.ckpt) is the last good state. Lower the learning rate (lr={lr}) "
                "or check the data for bad values."
            )
