"""The ``lit-colorize`` command: LightningCLI over ColorizationModule and any LightningDataModule,
plus ``lit-colorize export`` (ONNX) and ``lit-colorize evaluate`` (metrics on a photo folder)."""

from __future__ import annotations

import re
import signal
import sys
from argparse import ArgumentError
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from jsonargparse import ActionYesNo, Namespace

from lit_colorize.colorizer import check_ckpt_path
from lit_colorize.errors import ConfigError, debug_requested, find_user_error, one_line
from lit_colorize.module import ColorizationModule
from lit_colorize.noise import quiet_wandb_init, silence_known_noise
from lit_colorize.paths import evaluate_without_a_run, free_path, run_dir
from lit_colorize.precision import default_precision
from lit_colorize.pretrained import pretrained_checkpoint
from lit_colorize.resume import CHECKPOINT_CALLBACKS, resolve_last_checkpoint


#: The exit status of a run stopped by SIGTERM, as a shell reports a process killed by it (128 + 15).
SIGTERM_EXIT = 128 + signal.SIGTERM

#: The configs of this clone (an editable install), to name in the fix for a config not found.
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
#: What ``lit-colorize predict --help`` ends with (and the README's predict section says).
PREDICT_EXIT_RULE = (
    "Exit status: 0 when every photo and video was written or its outputs existed already (kept unless --overwrite); "
    "1 when any of them failed (unreadable, out of memory, not writable: each reported by path), or on a wrong "
    "option; 143 when stopped by SIGTERM."
)


class SaveConfigToRunDir(SaveConfigCallback):
    """Writes the resolved config into the run's folder, beside its checkpoints and samples.

    Lightning's default writes to ``trainer.log_dir``, which W&B shares between runs; here
    each run keeps its own, and an existing file (a resumed run) is never overwritten.
    """

    def __init__(
        self,
        parser: LightningArgumentParser,
        config: Namespace,
        config_filename: str = "config.yaml",
        overwrite: bool = False,
        multifile: bool = False,
    ) -> None:
        super().__init__(parser, config, config_filename, overwrite, multifile, save_to_log_dir=False)

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage in ("validate", "test"):
            return  # evaluation makes no run folder (see lit_colorize.paths.evaluate_without_a_run)
        path = free_path(run_dir(trainer) / self.config_filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.parser.save(self.config, str(path), skip_none=False, multifile=self.multifile)


class ColorizationCLI(LightningCLI):
    """``lit-colorize fit|validate|test|predict --config configs/toyshapes.yaml``.

    ``predict`` also takes the ``--writer.*`` options of :class:`ColorizedPhotoWriter`
    (output folder, temperatures, format, overwrite), which writes what is predicted.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("save_config_callback", SaveConfigToRunDir)
        super().__init__(
            ColorizationModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            **kwargs,
        )

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """Parsers that raise their errors (``main`` tells them in one line, exit status 1)
        instead of printing the whole usage and exiting with 2."""
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand != "fit":  # seed 0, as Lightning picks without one, minus its "No seed found" warning
            parser.set_defaults(seed_everything=0)
        if subcommand == "predict":
            from lit_colorize.photo_writer import ColorizedPhotoWriter

            parser.add_lightning_class_args(ColorizedPhotoWriter, "writer")
            # nargs="?": `--overwrite`, `--overwrite true|false` and `--no_overwrite` all work, like every other switch.
            parser.add_argument(
                "--overwrite", action=ActionYesNo, nargs="?", default=False,
                help="replace existing files (inputs included) instead of keeping them",
            )  # fmt: skip
            parser.add_argument(
                "--skip_existing", action=ActionYesNo, nargs="?", default=False,
                help="keep outputs that exist quietly (without: one 'exists, skipped' line each); "
                "either way only the missing ones are written (a rerun after a killed run)",
            )  # fmt: skip
            parser.epilog = PREDICT_EXIT_RULE
            parser.link_arguments("overwrite", "writer.overwrite")
            parser.link_arguments("skip_existing", "writer.skip_existing")
        return parser

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Then ``--ckpt_path`` is checked (:func:`lit_colorize.colorizer.check_ckpt_path`), before
        Lightning reads the file's hyperparameters into the config and torch's message for a bad
        file (which advises unsafe loading) could reach the user."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            config = self.config[subcommand]
            if subcommand == "predict" and not config.get("ckpt_path"):
                config.ckpt_path = str(pretrained_checkpoint())
                print(f"predict: no --ckpt_path given, colorizing with the shipped model {config.ckpt_path} "
                      "(docs/MODEL_CARD.md)", file=sys.stderr, flush=True)  # fmt: skip
            check_ckpt_path(subcommand, config.get("ckpt_path"), (config.get("model") or {}).get("class_path"))

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """``--trainer.enable_progress_bar false`` drops the config's progress bar (Lightning
        would refuse the pair); W&B is set up without its anonymous-mode warning, in a folder
        that exists (else it warns "git root logs does not exist"); ``validate`` prints its
        metrics once: when a callback says them (``prints_validation_metrics``, as
        ``callbacks.LogProgressBar`` does), Lightning's table is left out."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer_config = config.get("trainer") or {}
        if trainer_config.get("enable_progress_bar") is False and "callbacks" not in kwargs:
            callbacks = trainer_config.get("callbacks") or []
            kwargs["callbacks"] = [c for c in callbacks if not isinstance(c, ProgressBar)]
        check_accelerator(trainer_config.get("accelerator"))
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except MisconfigurationException as error:  # Lightning's word for a trainer option that cannot work here
            raise ConfigError(f"--trainer: {error}") from error
        quiet_wandb_init(trainer.loggers)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and logger.save_dir:
                Path(logger.save_dir).mkdir(parents=True, exist_ok=True)
        if self.subcommand == "validate" and any(getattr(c, "prints_validation_metrics", False) for c in trainer.callbacks):
            config["verbose"] = False
        return trainer

    def before_instantiate_classes(self) -> None:
        """``fit --ckpt_path last`` resumes the run a killed job left (see :mod:`lit_colorize.resume`);
        ``validate`` and ``test`` print their metrics and write no run (see
        :func:`lit_colorize.paths.evaluate_without_a_run`); ``fit`` without ``--trainer.precision``
        trains in bf16 mixed precision where the device computes bf16 natively, else in fp32 (see :mod:`lit_colorize.precision`); evaluation
        and prediction stay fp32 unless asked, so their outputs match the checkpoint exactly."""
        config = self.config[self.subcommand] if self.subcommand else self.config  # run=False: no subcommand
        if self.subcommand == "fit" and config.get("ckpt_path") == "last":
            resolve_last_checkpoint(config, yaml.safe_load(self._parser("fit").dump(config, skip_none=False)))
        if self.subcommand in ("validate", "test"):
            evaluate_without_a_run(config, self.subcommand)
        if self.subcommand == "predict":
            self._prepare_predict(config)
        trainer = config.trainer
        if self.subcommand == "fit" and trainer.get("precision") is None:
            trainer.precision = default_precision(trainer.get("accelerator"))

    def _prepare_predict(self, config: Namespace) -> None:
        """Before the model loads: the run-level checks (:func:`lit_colorize.outputs.check_predict_setup`,
        raising :class:`~lit_colorize.outputs.PredictSetupError`); a datamodule that takes
        ``output_dir`` and ``output_suffix`` (``datamodules.Photos``) is told the writer's, so a
        folder search never reads outputs back. Predict writes its images only: no config file
        (it would pile up in the current folder), no logger run (a training config's W&B
        logger made an offline run per predict, which logs nothing), and no checkpoints: without
        Lightning's default ModelCheckpoint, the one saved in the checkpoint is not restored
        into it (and warned about, "The dirpath has changed")."""
        from lit_colorize.outputs import check_predict_setup

        self.save_config_callback = None
        config.trainer.logger = False
        callbacks = config.trainer.get("callbacks") or []
        if not any(str(getattr(c, "class_path", "")).endswith(CHECKPOINT_CALLBACKS) for c in callbacks):
            config.trainer.enable_checkpointing = False
        data = config.get("data")
        init_args = data.get("init_args") if data is not None else None
        photos = init_args is not None and all(key in init_args for key in ("inputs", "output_dir", "output_suffix"))
        inputs = data.init_args.get("inputs") if photos else None
        check_predict_setup(config.writer.output_dir, inputs, config.overwrite, config.skip_existing)
        if photos:
            data.init_args.output_dir = str(config.writer.output_dir)
            data.init_args.output_suffix = config.writer.suffix

    def prediction_failures(self) -> int:
        """How many photos or outputs the writer of a finished ``predict`` failed on, all processes."""
        return sum(getattr(callback, "total_failures", 0) for callback in self.trainer.callbacks)


def check_accelerator(accelerator: object) -> None:
    """``--trainer.accelerator cuda`` (or gpu) on a machine without a CUDA GPU: one line with the fix."""
    if isinstance(accelerator, str) and accelerator.lower() in ("cuda", "gpu") and not torch.cuda.is_available():
        raise ConfigError(
            f"--trainer.accelerator {accelerator}: no CUDA GPU is available here (torch.cuda.is_available() is False); "
            "use --trainer.accelerator cpu, or auto to take a GPU where there is one"
        )


def option_values(argv: list[str], option: str) -> list[str]:
    """The values given to ``option`` (``--option value`` or ``--option=value``)."""
    values = []
    for index, arg in enumerate(argv):
        if arg == option and index + 1 < len(argv):
            values.append(argv[index + 1])
        elif arg.startswith(option + "="):
            values.append(arg.split("=", 1)[1])
    return values


def check_config_files(argv: list[str]) -> None:
    """Before the parser sees them: ``predict`` has a ``--config`` (it names the data and the
    writer), and every ``--config`` file exists, or one line says where the configs are."""
    command = argv[0] if argv else ""
    if command not in LIGHTNING_COMMANDS or {"-h", "--help"} & set(argv):
        return
    configs = option_values(argv, "--config")
    if command == "predict" and not configs and not option_values(argv, "--data") and not option_values(argv, "--data.class_path"):
        raise ConfigError(
            f"predict needs its config: add --config {config_path('predict.yaml')} (it names the photo inputs and the "
            "writer); e.g. lit-colorize predict --config configs/predict.yaml --data.inputs '[old_photo.jpg]'"
        )
    for config in configs:
        if config.lstrip().startswith(("{", "[")) or Path(config).expanduser().is_file():
            continue  # inline YAML, or a file that is there
        known = CONFIGS / Path(config).name
        fix = f"give its full path, e.g. --config {known}" if known.is_file() else "give the path of a config file"
        raise ConfigError(f"config file {config} not found (relative paths start at the current folder, {Path.cwd()}); {fix}")


def config_path(name: str) -> str:
    """``configs/<name>`` as the user can reach it from here: relative in the clone, else absolute."""
    known = CONFIGS / name
    relative = Path("configs") / name
    return str(relative if relative.is_file() or not known.is_file() else known)


def parse_error_line(error: ArgumentError, command: str) -> str:
    """jsonargparse's message (often a page on union types) as one line: the option, by its
    nested keys, and the first thing it expected that is not None."""
    text = str(error)
    lines = [line.strip().removeprefix("- ") for line in text.splitlines() if line.strip()]
    keys = re.findall(r'Parser key "([^"]+)"', text)
    expected = [line for line in lines if line.startswith("Expected a") and "NoneType" not in line]
    if keys and expected:
        text = f"--{'.'.join(keys)}: {expected[0]}"
    else:
        text = " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines[0] if lines else "invalid arguments")
    return f"{text}; see lit-colorize {command} --help"


def main(args: list[str] | None = None) -> None:
    """The console script. A user error (:mod:`lit_colorize.errors`) ends the run with one line
    and exit status 1; a bug keeps its traceback. ``--debug`` or ``LIT_COLORIZE_DEBUG=1``: the
    traceback of user errors too. A run stopped by SIGTERM exits with 143 once Lightning's
    ``SIGTERMException`` has reached the callbacks (``RunCheckpoint`` saves ``last.ckpt`` then):
    Lightning's exception is a ``SystemExit`` without a code, which would exit 0 and tell
    ``&&`` chains and schedulers that the run succeeded."""
    argv = sys.argv[1:] if args is None else list(args)
    debug = debug_requested(argv)
    argv = [arg for arg in argv if arg != "--debug"]
    command = argv[0] if argv else ""
    silence_known_noise(command)
    if args is None:
        sys.argv[1:] = argv  # LightningCLI reads sys.argv itself (and warns when given both)
    try:
        check_config_files(argv)
        _run(argv, None if args is None else argv)
    except SIGTERMException:
        print(f"lit-colorize {command}: stopped by SIGTERM (exit status {SIGTERM_EXIT})", file=sys.stderr, flush=True)
        raise SystemExit(SIGTERM_EXIT) from None
    except ArgumentError as error:  # a wrong option (the parsers raise, see ColorizationCLI.init_parser)
        if debug:
            raise
        raise SystemExit(f"lit-colorize {command}: error: {parse_error_line(error, command)}") from None
    except Exception as error:
        user_error = None if debug else find_user_error(error)
        if user_error is None:
            raise
        raise SystemExit(f"lit-colorize {command}: error: {one_line(user_error)}") from None


def _run(argv: list[str], cli_args: list[str] | None) -> None:
    if argv[:1] == ["export"]:
        from lit_colorize.export import main as export_main

        export_main(argv[1:])
        return
    if argv[:1] == ["serve"]:
        from lit_colorize.app.serve import main as serve_main

        serve_main(argv[1:])
        return
    if argv[:1] == ["evaluate"]:
        from lit_colorize.evaluation import main as evaluate_main

        evaluate_main(argv[1:])
        return
    cli = ColorizationCLI(args=cli_args)
    if cli.subcommand == "predict" and cli.prediction_failures():
        raise SystemExit(f"lit-colorize predict: {cli.prediction_failures()} failure(s), listed above")


if __name__ == "__main__":
    main()
