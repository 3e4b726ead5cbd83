"""The ``lit-colorize`` command: LightningCLI over ColorizationModule and any LightningDataModule."""

from __future__ import annotations

from lightning import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from jsonargparse import Namespace

from lit_colorize.module import ColorizationModule
from lit_colorize.paths import free_path, run_dir


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
    """``lit-colorize fit|validate|test|predict --config configs/toyshapes.yaml``."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("save_config_callback", SaveConfigToRunDir)
        super().__init__(
            ColorizationModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            **kwargs,
        )


def main(args: list[str] | None = None) -> None:
    ColorizationCLI(args=args)


if __name__ == "__main__":
    main()
