"""Small builders shared by the tests."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import lightning as L
import torch
import yaml

from callbacks import ColorTableBuilder
from datamodules import ToyShapes
from lit_colorize import ColorizationModule
from tests.conftest import REPO_ROOT


def tiny_toyshapes(**kwargs: Any) -> ToyShapes:
    return ToyShapes(**{"num_train": 128, "num_val": 64, "batch_size": 32, **kwargs})


def quick_trainer(root: Path, **kwargs: Any) -> L.Trainer:
    """A CPU trainer with no logger output or progress bar, writing under ``root``."""
    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        callbacks=[ColorTableBuilder()],
    )
    return L.Trainer(**{**defaults, **kwargs})


def fitted_module(root: Path, **module_kwargs: Any) -> tuple[ColorizationModule, ToyShapes, L.Trainer]:
    module = ColorizationModule(**module_kwargs)
    datamodule = tiny_toyshapes()
    trainer = quick_trainer(root, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(module, datamodule)
    return module, datamodule, trainer


class StepRecorder(L.Callback):
    """Appends ``<pid> <global step>`` after every optimizer step to ``path``: what a test reads
    to see how far a training subprocess got, and from which step a resumed one went on."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.is_global_zero:
            with open(self.path, "a") as log:
                log.write(f"{os.getpid()} {trainer.global_step}\n")


PROGRESS_BARS = ("RichProgressBar", "auto_progress_bar", "LogProgressBar")


def toyshapes_config(
    path: Path,
    num_train: int = 256,
    num_val: int = 32,
    batch_size: int = 32,
    last_every_n_train_steps: int | None = 100,
    **trainer: Any,
) -> Path:
    """configs/toyshapes.yaml (as composed, with configs/common/train.yaml) made small, without
    the progress bar, with a StepRecorder writing ``steps.log`` beside the config; written to
    ``path``."""
    config = parsed_config("fit", "--config", str(REPO_ROOT / "configs" / "toyshapes.yaml"))
    config["data"]["init_args"].update(num_train=num_train, num_val=num_val, batch_size=batch_size)
    callbacks = [c for c in config["trainer"]["callbacks"] if not c["class_path"].endswith(PROGRESS_BARS)]
    for callback in callbacks:
        if callback["class_path"] == "callbacks.RunCheckpoint":
            callback["init_args"]["last_every_n_train_steps"] = last_every_n_train_steps
    callbacks.append({"class_path": "tests.helpers.StepRecorder", "init_args": {"path": str(path.parent / "steps.log")}})
    config["trainer"]["callbacks"] = callbacks
    config["trainer"].update(enable_progress_bar=False, enable_model_summary=False, **trainer)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def parsed_config(*args: str) -> dict[str, Any]:
    """What ``lit-colorize <args> --print_config`` prints, as plain data: a config as the real CLI
    parser composes it (the files it includes, then the command line), parsed in this process.
    ``parsed_config("fit", "--config", str(REPO_ROOT / "configs" / "toyshapes.yaml"))``."""
    from lit_colorize.cli import ColorizationCLI

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), mock.patch.object(sys, "argv", ["lit-colorize"]):  # args only
        try:
            ColorizationCLI(args=[*args, "--print_config"])
        except SystemExit as done:
            assert done.code in (0, None), f"--print_config failed (exit {done.code}): {args}"
        else:
            raise AssertionError(f"--print_config did not exit: {args}")
    return yaml.safe_load(printed.getvalue())


def recorded_steps(path: Path) -> list[tuple[int, int]]:
    if not path.is_file():
        return []
    return [tuple(int(x) for x in line.split()) for line in path.read_text().splitlines() if line.strip()]


def cli_env() -> dict[str, str]:
    """Environment for ``lit-colorize`` subprocesses: offline W&B, and the tests importable."""
    return {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO_ROOT)}


def console_script() -> str:
    executable = shutil.which("lit-colorize", path=str(Path(sys.executable).parent)) or shutil.which("lit-colorize")
    assert executable, "the lit-colorize console script is not installed (pip install -e .)"
    return executable


class HostReadProbe:
    """Records every Python-level read of a tensor's value on the host (``item``, ``bool``, ``int``,
    ``float``, ``tolist``, ``numpy``, ``__index__``) between :meth:`start` and :meth:`stop`.

    On a GPU each such read makes the host wait until the device has caught up, which stalls the
    queue of kernels; on the CPU they cost nothing, so this is how a CPU test can see them.
    On CUDA, ``torch.cuda.set_sync_debug_mode("error")`` also catches the reads inside torch.
    """

    METHODS = ("item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__")

    def __init__(self) -> None:
        self.reads: list[str] = []
        self._saved: dict[str, Any] = {}

    def start(self) -> None:
        for name in self.METHODS:
            self._saved[name] = torch.Tensor.__dict__.get(name)
            setattr(torch.Tensor, name, self._recording(name, getattr(torch.Tensor, name)))

    def stop(self) -> None:
        for name, own in self._saved.items():
            if own is None:
                delattr(torch.Tensor, name)  # it was inherited from torch._C.TensorBase
            else:
                setattr(torch.Tensor, name, own)
        self._saved = {}

    def _recording(self, name: str, original: Any) -> Any:
        reads = self.reads

        def read(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            caller = traceback.extract_stack(limit=2)[0]  # the frame that read the tensor
            reads.append(f"Tensor.{name} at {caller.filename}:{caller.lineno} ({caller.line})")
            return original(tensor, *args, **kwargs)

        return read


@contextmanager
def no_device_waits() -> Iterator[None]:
    """torch's sync debug mode: any device-to-host wait inside raises (CUDA tests only)."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")
