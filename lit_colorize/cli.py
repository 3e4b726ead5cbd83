"""The ``lit-colorize`` command: LightningCLI over ColorizationModule and any LightningDataModule,
plus ``lit-colorize export`` (ONNX)."""

from __future__ import annotations

import sys
from typing import Any

from lightning import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from jsonargparse import ActionYesNo, Namespace

from lit_colorize.module import ColorizationModule
from lit_colorize.paths import free_path, run_dir
from lit_colorize.precision import default_precision
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
            from callbacks.photo_writer import ColorizedPhotoWriter

            parser.add_lightning_class_args(ColorizedPhotoWriter, "writer")
            parser.add_argument(
                "--overwrite", action=ActionYesNo, default=False,
                help="replace existing files (inputs included) instead of refusing to write over them",
            )  # fmt: skip
            parser.link_arguments("overwrite", "writer.overwrite")
        return parser

    def before_instantiate_classes(self) -> None:
        """``fit --ckpt_path last`` resumes the run a killed job left (see :mod:`lit_colorize.resume`);
        ``fit`` without ``--trainer.precision`` trains in bf16 mixed precision where the device
        computes bf16 natively, else in fp32 (see :mod:`lit_colorize.precision`); evaluation
        and prediction stay fp32 unless asked, so their outputs match the checkpoint exactly."""
        config = self.config[self.subcommand]
        if self.subcommand == "fit" and config.get("ckpt_path") == "last":
            resolve_last_checkpoint(config)
        trainer = config.trainer
        if self.subcommand == "fit" and trainer.get("precision") is None:
            trainer.precision = default_precision(trainer.get("accelerator"))

    def prediction_failures(self) -> int:
        """How many photos or outputs the writer of a finished ``predict`` failed on, all processes."""
        return sum(getattr(callback, "total_failures", 0) for callback in self.trainer.callbacks)


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] == ["export"]:
        from lit_colorize.export import main as export_main

        export_main(argv[1:])
        return
    cli = ColorizationCLI(args=args)
    if cli.subcommand == "predict" and cli.prediction_failures():
        raise SystemExit(f"lit-colorize predict: {cli.prediction_failures()} failure(s), listed above")


if __name__ == "__main__":
    main()
