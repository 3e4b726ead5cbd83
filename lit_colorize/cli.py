"""The ``lit-colorize`` command: LightningCLI over ColorizationModule and any LightningDataModule,
plus ``lit-colorize export`` (ONNX) and ``lit-colorize evaluate`` (metrics on a photo folder)."""

from __future__ import annotations

import sys
from typing import Any

import yaml
from lightning import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from jsonargparse import ActionYesNo, Namespace

from lit_colorize.colorizer import check_ckpt_path
from lit_colorize.errors import debug_requested, find_user_error, one_line
from lit_colorize.module import ColorizationModule
from lit_colorize.noise import quiet_wandb_init, silence_known_noise
from lit_colorize.paths import evaluate_without_a_run, free_path, run_dir
from lit_colorize.precision import default_precision
from lit_colorize.pretrained import pretrained_checkpoint
from lit_colorize.resume import resolve_last_checkpoint


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

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "predict":
            from lit_colorize.photo_writer import ColorizedPhotoWriter

            parser.add_lightning_class_args(ColorizedPhotoWriter, "writer")
            # nargs="?": `--overwrite`, `--overwrite true|false` and `--no_overwrite` all work, like every other switch.
            parser.add_argument(
                "--overwrite", action=ActionYesNo, nargs="?", default=False,
                help="replace existing files (inputs included) instead of refusing to write over them",
            )  # fmt: skip
            parser.add_argument(
                "--skip_existing", action=ActionYesNo, nargs="?", default=False,
                help="keep outputs that exist and write only the missing ones (a rerun after a killed run)",
            )  # fmt: skip
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
        would refuse the pair); W&B is set up without its anonymous-mode warning."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer_config = config.get("trainer") or {}
        if trainer_config.get("enable_progress_bar") is False and "callbacks" not in kwargs:
            callbacks = trainer_config.get("callbacks") or []
            kwargs["callbacks"] = [c for c in callbacks if not isinstance(c, ProgressBar)]
        trainer = super().instantiate_trainer(**kwargs)
        quiet_wandb_init(trainer.loggers)
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
        (it would pile up in the current folder)."""
        from lit_colorize.outputs import check_predict_setup

        self.save_config_callback = None
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


def main(args: list[str] | None = None) -> None:
    """The console script. A user error (:mod:`lit_colorize.errors`) ends the run with one line
    and exit status 1; a bug keeps its traceback. ``--debug`` or ``LIT_COLORIZE_DEBUG=1``: the
    traceback of user errors too."""
    argv = sys.argv[1:] if args is None else list(args)
    debug = debug_requested(argv)
    argv = [arg for arg in argv if arg != "--debug"]
    command = argv[0] if argv else ""
    silence_known_noise(command)
    if args is None:
        sys.argv[1:] = argv  # LightningCLI reads sys.argv itself (and warns when given both)
    try:
        _run(argv, None if args is None else argv)
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
