"""The ColorizationModule's options that the constructor checks before anything is allocated,
so a wrong config fails in one line naming the option."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch

from lit_colorize.errors import ConfigError, check_temperature

Head = Literal["classification", "regression"]
Decoding = Literal["mode_mean", "annealed_mean"]
Optimizer = Literal["adam", "rmsprop"]
LRSchedule = Literal["constant", "onecycle", "cosine"]
# The ab grid spans 255 ab units (the gamut itself about -110..110). At 128 a bin is 2 ab units
# wide, under the just-noticeable color difference (about 2.3), so finer bins carry nothing a
# viewer could see, while memory grows with the number of bins K = grid_size**2: the (K, H, W)
# logits of one 256x256 image take 4.3 GB at 128 (grid_size 1000 would ask for 262 GB), and
# building the table compares every bin with every other (K x K).
MAX_GRID_SIZE = 128


@dataclass(frozen=True)
class DecodingChoice:
    """One way to turn a pixel's bin distribution into ab: the decoding and its temperature
    (mode-to-mean T for ``mode_mean``, the softmax temperature for ``annealed_mean``)."""

    name: Decoding
    temperature: float

    def as_hparam(self) -> dict[str, Any]:
        """Plain data, as a checkpoint's hyperparameters hold it (``weights_only`` loads it)."""
        return {"name": self.name, "temperature": self.temperature}


def check_predict_decoding(value: object, name: str = "predict_decoding") -> DecodingChoice | None:
    """A model's recommended decoding from its hyperparameters, ``{name: annealed_mean,
    temperature: 0.38}`` (None: none recorded); ConfigError naming the option otherwise."""
    if value is None or isinstance(value, DecodingChoice):
        return value
    if not isinstance(value, Mapping) or set(value) != {"name", "temperature"} or value["name"] not in get_args(Decoding):
        raise ConfigError(
            f"{name} must be {{name: mode_mean|annealed_mean, temperature: T}}, e.g. {{name: annealed_mean, "
            f"temperature: 0.38}}, or null for none; got {value!r}"
        )
    return DecodingChoice(value["name"], check_temperature(value["temperature"], f"{name}.temperature"))


def check_module_options(
    head: str, optimizer: str, lr_schedule: str, grid_size: object, lr: object, classification_only: bool
) -> None:
    """Raise :class:`ConfigError` for an unknown choice, a grid out of range, a bad learning rate,
    or classification-only options (``classification_only``) on the regression head."""
    if head not in ("classification", "regression"):
        raise ConfigError(f"head must be 'classification' or 'regression', got {head!r}")
    if optimizer not in ("adam", "rmsprop"):
        raise ConfigError(f"optimizer must be 'adam' or 'rmsprop', got {optimizer!r}")
    if lr_schedule not in ("constant", "onecycle", "cosine"):
        raise ConfigError(f"lr_schedule must be 'constant', 'onecycle' or 'cosine', got {lr_schedule!r}")
    if head == "regression" and classification_only:
        raise ConfigError("class_rebalancing, soft_targets and gamut_classes apply to the classification head only")
    if isinstance(grid_size, bool) or not isinstance(grid_size, int) or not 2 <= grid_size <= MAX_GRID_SIZE:
        raise ConfigError(
            f"grid_size must be an integer from 2 to {MAX_GRID_SIZE} (grid_size**2 ab bins; finer than "
            f"{MAX_GRID_SIZE} the bins are under 2 ab units, too close to tell apart), got {grid_size!r}"
        )
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a finite number > 0, got {lr!r}")


def build_optimizers(parameters: Iterable[torch.nn.Parameter], hparams: Mapping[str, Any], total_steps: Callable[[], int]) -> Any:
    """Adam or RMSprop at ``lr`` with ``weight_decay``; optionally one-cycle (peak ``lr``) or cosine
    decay, stepped per batch over ``total_steps()`` (asked only when a schedule needs it)."""
    optimizer_class = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}[hparams["optimizer"]]
    optimizer = optimizer_class(parameters, lr=hparams["lr"], weight_decay=hparams["weight_decay"])
    if hparams["lr_schedule"] == "constant":
        return optimizer
    if hparams["lr_schedule"] == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hparams["lr"], total_steps=total_steps())
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps())
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def checked_temperatures(
    values: float | DecodingChoice | Iterable[float | DecodingChoice] | None, name: str = "temperatures"
) -> list[float | DecodingChoice] | None:
    """Temperatures (checked, :func:`~lit_colorize.errors.check_temperatures`) and decoding
    choices (as they are) to render; None stays None: the model's own decoding."""
    if values is None:
        return None
    listed = [values] if isinstance(values, (int, float, DecodingChoice)) else list(values)
    if not listed:
        raise ConfigError(f"{name} must list at least one temperature, e.g. [0.8], or be null for the model's own decoding")
    return [value if isinstance(value, DecodingChoice) else check_temperature(value, name) for value in listed]
