"""Known, harmless messages that every ``lit-colorize`` run would print, silenced one by one.

Each filter matches one message from one module, so every other warning still shows. Installed
by the command (``lit_colorize.cli.main``), not on import: a library user keeps their own filters.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

# (message regex, module regex) of Python warnings that say nothing a user of lit-colorize can act on.
HARMLESS_WARNINGS: list[tuple[str, str]] = [
    # ColorizationModule.on_after_batch_transfer turns uint8 batches into Lab on the device, on purpose.
    (r"You have overridden `on_after_batch_transfer` in `LightningModule` but have passed in a `LightningDataModule`",
     r"lightning\.pytorch\.trainer\.connectors\.data_connector"),
    # Lightning 2.6 calls a torch API that torch deprecates; nothing to do on our side.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"lightning\.pytorch\.utilities\._pytree"),
]  # fmt: skip
# Predict builds a Trainer with the writer only; the training callbacks saved in the checkpoint
# (checkpointing, bin table, sample grids) have nothing to do there.
PREDICT_WARNINGS: list[tuple[str, str]] = [
    (r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint need to be provided",
     r"lightning\.pytorch\.trainer\.call"),
]  # fmt: skip
# Lightning's advertisements for its cloud products, logged at INFO on every run.
_TIP_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
EVALUATION_COMMANDS = ("validate", "test", "predict")
# Lightning's banners on every validate, test or predict call, through the same loggers as the
# lines of lit-colorize itself ("evaluating ...", a photo's transparency), so those loggers keep
# their level: the devices it found and did not use, and the restore before the line that names
# the checkpoint ("Loaded model weights from the checkpoint at ...", kept).
EVALUATION_BANNERS = ("GPU available:", "TPU available:", "HPU available:", "Restoring states from the checkpoint path at ")
# "Seed set to 0" (INFO): the seed of an evaluation is the config's, said on every call.
_SEED_LOGGER = "lightning.fabric.utilities.seed"


class _DropProductTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("💡 Tip:") and ("litlogger" in message or "litmodels" in message))


class _DropEvaluationBanners(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(EVALUATION_BANNERS)


def silence_known_noise(subcommand: str | None = None) -> None:
    """Install the filters above (the predict ones for ``predict`` only, the banners and the
    seed line for validate, test and predict; a later ``fit`` in the same process gets them back)."""
    for message, module in HARMLESS_WARNINGS + (PREDICT_WARNINGS if subcommand == "predict" else []):
        warnings.filterwarnings("ignore", message=message, module=module)
    evaluating = subcommand in EVALUATION_COMMANDS
    for name in _TIP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropProductTips) for f in logger.filters):
            logger.addFilter(_DropProductTips())
        banners = [f for f in logger.filters if isinstance(f, _DropEvaluationBanners)]
        if evaluating and not banners:
            logger.addFilter(_DropEvaluationBanners())
        for installed in banners if not evaluating else []:
            logger.removeFilter(installed)
    logging.getLogger(_SEED_LOGGER).setLevel(logging.WARNING if evaluating else logging.NOTSET)


def quiet_wandb_init(loggers: list[Any]) -> None:
    """Lightning's WandbLogger passes ``anonymous=None`` to ``wandb.init`` when the user set
    nothing, and wandb then warns on every run that the setting has no effect. Leave it out
    in that case (an explicit value is still passed, and still warned about)."""
    for logger in loggers:
        init = getattr(logger, "_wandb_init", None)
        if isinstance(init, dict) and "anonymous" in init and init["anonymous"] is None:
            del init["anonymous"]
