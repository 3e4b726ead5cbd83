"""``--ckpt_path last`` continues only the run it should, best and last checkpoints are all
written, a finished run is never written to again, and ``validate`` makes no run (issue 13,
sections 1, 2 and two items of 7)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from jsonargparse import Namespace

from callbacks import ColorTableBuilder, RunCheckpoint
from lit_colorize import ColorizationModule
from lit_colorize.resume import FINISHED_MARKER, FinishedRunError, ResumeError, mark_finished, resolve_last_checkpoint
from tests.conftest import REPO_ROOT
from tests.helpers import cli_env, console_script, quick_trainer, recorded_steps, tiny_toyshapes, toyshapes_config

BATCHES = 4  # tiny_toyshapes: 128 training images, batch 32
WIDTHS = (8, 16, 32)
MODEL = {"class_path": "lit_colorize.ColorizationModule", "init_args": {"widths": [8, 16, 32]}}
DATA = {"class_path": "datamodules.ToyShapes", "init_args": {"num_train": 128}}


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def stat_of(path: Path) -> tuple[int, int, int]:
    """Inode, size and mtime: an atomic save replaces the inode even when the bytes come out equal."""
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def files_under(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p.relative_to(folder)): stat_of(p) for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- which run `last` resolves to (no training) -------------------------------------------------


def fake_run(runs: Path, name: str, *, model: dict = MODEL, last: bool = True, finished: bool = False) -> Path:
    """A run folder as the CLI leaves it: config.yaml, maybe checkpoints/last.ckpt, maybe finished."""
    run = runs / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": model, "data": DATA, "trainer": {"max_epochs": 3}}))
    if last:
        (run / "checkpoints" / "last.ckpt").write_bytes(name.encode())
    if finished:
        mark_finished(run / "checkpoints", global_step=84, epoch=2)
    return run


def fit_config(save_dir: Path, run_id: str | None = None, logger: str = "WandbLogger") -> Namespace:
    key, folder = ("id", "project") if logger == "WandbLogger" else ("version", "name")
    init_args = Namespace(save_dir=str(save_dir), **{folder: "p", key: run_id})
    logger_config = Namespace(class_path=f"lightning.pytorch.loggers.{logger}", init_args=init_args)
    return Namespace(ckpt_path="last", trainer=Namespace(logger=logger_config, callbacks=[], default_root_dir=None))


CURRENT = {"model": MODEL, "data": DATA, "trainer": {"max_epochs": 30}}  # a resume may change the trainer


def test_last_skips_finished_runs_and_other_configs(tmp_path: Path) -> None:
    runs = tmp_path / "p"
    fake_run(runs, "a-finished", finished=True)
    fake_run(runs, "b-other-config", model={**MODEL, "init_args": {"widths": [16, 32, 64]}})
    wanted = fake_run(runs, "c-killed")
    os.utime(wanted / "checkpoints" / "last.ckpt", ns=(1, 1))  # the oldest: newest-first would pick another
    config = fit_config(tmp_path)
    assert resolve_last_checkpoint(config, CURRENT) == wanted / "checkpoints" / "last.ckpt"
    assert config.ckpt_path == str(wanted / "checkpoints" / "last.ckpt")
    assert config.trainer.logger.init_args.id == "c-killed"  # W&B continues that run
    assert config.trainer.logger.dict_kwargs == {"resume": "allow"}


def test_last_with_nothing_to_resume_stops_with_one_line(tmp_path: Path) -> None:
    """Issue 13's reproduction: a finished run, and a second one killed before its first last.ckpt."""
    runs = tmp_path / "p"
    fake_run(runs, "finished-run", finished=True)
    fake_run(runs, "killed-early", last=False)
    config = fit_config(tmp_path)
    with pytest.raises(ResumeError) as raised:
        resolve_last_checkpoint(config, CURRENT)
    message = str(raised.value)
    assert "\n" not in message
    assert f"no unfinished run of this config (same model, data and logger) with a last.ckpt under {runs}/" in message
    assert "1 finished (finished-run)" in message and "1 without last.ckpt (killed-early)" in message
    assert "--ckpt_path PATH or --trainer.logger.init_args.id RUN" in message
    assert config.ckpt_path == "last" and config.trainer.logger.init_args.id is None  # nothing changed


def test_last_with_two_unfinished_runs_of_the_config_is_ambiguous(tmp_path: Path) -> None:
    fake_run(tmp_path / "p", "run-1")
    fake_run(tmp_path / "p", "run-2")
    with pytest.raises(ResumeError, match=r"2 unfinished runs of this config .*\(run-1, run-2\); choose with --ckpt_path PATH"):
        resolve_last_checkpoint(fit_config(tmp_path), CURRENT)


def test_last_of_a_named_run(tmp_path: Path) -> None:
    runs = tmp_path / "p"
    fake_run(runs, "slurm-77")
    fake_run(runs, "newer", finished=False)
    named = fit_config(tmp_path, "slurm-77")
    assert resolve_last_checkpoint(named, CURRENT) == runs / "slurm-77" / "checkpoints" / "last.ckpt"
    fresh = fit_config(tmp_path, "slurm-99")  # a job's first start: nothing yet, a new run under that name
    assert resolve_last_checkpoint(fresh, CURRENT) is None and fresh.ckpt_path is None
    fake_run(runs, "done", finished=True)
    with pytest.raises(ResumeError, match=r"the run in .*done/checkpoints finished at global step 84 .*never resumed or written to"):
        resolve_last_checkpoint(fit_config(tmp_path, "done"), CURRENT)


def test_last_of_a_csv_run_names_its_version_folder(tmp_path: Path) -> None:
    fake_run(tmp_path / "p", "version_0", finished=True)
    fake_run(tmp_path / "p", "version_1")
    config = fit_config(tmp_path, logger="CSVLogger")
    assert resolve_last_checkpoint(config, CURRENT) == tmp_path / "p" / "version_1" / "checkpoints" / "last.ckpt"
    assert config.trainer.logger.init_args.version == "version_1"  # CSVLogger takes a string as the folder name


# ---- what RunCheckpoint writes (tiny fits in this process) --------------------------------------


class ValLossRecorder(ColorTableBuilder):
    """ColorTableBuilder that also records val/loss after each validation epoch (fewer callbacks to pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.val_losses: list[float] = []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.val_losses.append(float(trainer.callback_metrics["val/loss"]))


@pytest.mark.parametrize("refresh_every", [1, BATCHES], ids=["refresh-every-step", "refresh-on-epoch-end-steps"])
def test_best_checkpoint_is_written_when_validation_ends_on_a_refresh_step(tmp_path: Path, refresh_every: int) -> None:
    recorder = ValLossRecorder()
    checkpoint = RunCheckpoint(
        dirpath=tmp_path / "checkpoints", monitor="val/loss", filename="epoch{epoch:03d}-val_loss{val/loss:.4f}",
        auto_insert_metric_name=False, last_every_n_train_steps=refresh_every,
    )  # fmt: skip
    trainer = quick_trainer(tmp_path, max_epochs=2, limit_val_batches=1, callbacks=[recorder, checkpoint])
    trainer.fit(ColorizationModule(widths=WIDTHS, lr=0.01), tiny_toyshapes())
    best_epoch = min(range(2), key=lambda epoch: recorder.val_losses[epoch])
    expected = f"epoch{best_epoch:03d}-val_loss{recorder.val_losses[best_epoch]:.4f}.ckpt"
    best = sorted(p.name for p in (tmp_path / "checkpoints").glob("epoch*.ckpt"))
    assert best == [expected], recorder.val_losses
    assert load(tmp_path / "checkpoints" / expected)["global_step"] == (best_epoch + 1) * BATCHES


class WorseEachEpoch(ColorizationModule):
    """Logs ``val/worse`` = the epoch: a monitored value that never improves after epoch 0."""

    def on_validation_epoch_end(self) -> None:
        self.log("val/worse", float(self.current_epoch))


class LastCkptStep(L.Callback):
    """Reads last.ckpt's global step at the start of each epoch after the first: the state left
    by the previous epoch's validation."""

    def __init__(self, path: Path) -> None:
        self.path, self.seen = path, []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch:
            self.seen.append((trainer.global_step, load(self.path)["global_step"]))


@pytest.mark.parametrize("stop", ["max_epochs", "max_steps"])
def test_last_ckpt_is_the_last_state_when_the_monitor_stops_improving(tmp_path: Path, stop: str) -> None:
    last = tmp_path / "checkpoints" / "last.ckpt"
    reader = LastCkptStep(last)
    checkpoint = RunCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val/worse", last_every_n_train_steps=100)
    limits = {"max_epochs": 3} if stop == "max_epochs" else {"max_epochs": 3, "max_steps": 2 * BATCHES + 1}  # ends mid-epoch
    trainer = quick_trainer(tmp_path, limit_val_batches=1, callbacks=[ColorTableBuilder(), reader, checkpoint], **limits)
    module = WorseEachEpoch(widths=WIDTHS)
    trainer.fit(module, tiny_toyshapes())
    assert trainer.global_step == (3 * BATCHES if stop == "max_epochs" else 2 * BATCHES + 1)
    assert [step for step, _ in reader.seen] == [BATCHES, 2 * BATCHES]
    assert all(saved == step for step, saved in reader.seen), reader.seen  # after each validation
    final = load(last)
    assert final["global_step"] == trainer.global_step
    for name, value in module.state_dict().items():
        assert torch.equal(final["state_dict"][name], value), name
    assert [p.name for p in (tmp_path / "checkpoints").glob("epoch*.ckpt")] == ["epoch=0-step=4.ckpt"]  # only the first was best


def finished_fit(root: Path) -> Path:
    """A short fit in ``root`` that ran to its end; returns its checkpoint folder."""
    trainer = quick_trainer(root, max_epochs=1, callbacks=[ColorTableBuilder(), RunCheckpoint(dirpath=root / "checkpoints", monitor="val/loss")])
    trainer.fit(ColorizationModule(widths=WIDTHS), tiny_toyshapes())
    assert (root / "checkpoints" / FINISHED_MARKER).is_file()
    return root / "checkpoints"


def test_a_finished_run_is_never_written_by_another_fit(tmp_path: Path) -> None:
    checkpoints = finished_fit(tmp_path)
    before = files_under(checkpoints)
    again = quick_trainer(tmp_path, max_epochs=3, callbacks=[ColorTableBuilder(), RunCheckpoint(dirpath=checkpoints, monitor="val/loss")])
    with pytest.raises(FinishedRunError, match=r"finished at global step 4 .*start a new run from its checkpoint"):
        again.fit(ColorizationModule(widths=WIDTHS), tiny_toyshapes(), ckpt_path=checkpoints / "last.ckpt")
    assert files_under(checkpoints) == before


class FailsAfterRestore(ColorizationModule):
    def __init__(self, fail_in: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fail_in = fail_in

    def configure_optimizers(self):
        configured = super().configure_optimizers()
        if self.fail_in == "restore":  # the optimizer state is restored after the loops: global step already 4

            def load_state_dict(state: dict) -> None:
                raise RuntimeError("restore failed")

            optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
            optimizer.load_state_dict = load_state_dict
        return configured

    def on_before_optimizer_step(self, optimizer) -> None:
        super().on_before_optimizer_step(optimizer)
        if self.fail_in == "first step":  # like OneCycleLR's "Tried to step 85 times" on a finished schedule
            raise RuntimeError("first step failed")


@pytest.mark.parametrize("fail_in", ["restore", "first step"])
def test_a_crash_while_restoring_saves_nothing(tmp_path: Path, fail_in: str) -> None:
    source = finished_fit(tmp_path / "source")
    checkpoints = tmp_path / "killed" / "checkpoints"  # a killed run: its last.ckpt, no finished marker
    checkpoints.mkdir(parents=True)
    shutil.copy2(source / "last.ckpt", checkpoints / "last.ckpt")
    before = files_under(checkpoints)
    trainer = quick_trainer(tmp_path / "killed", max_epochs=3, callbacks=[ColorTableBuilder(), RunCheckpoint(dirpath=checkpoints, monitor="val/loss")])
    with pytest.raises(RuntimeError, match=f"{fail_in} failed"):
        trainer.fit(FailsAfterRestore(fail_in, widths=WIDTHS), tiny_toyshapes(), ckpt_path=checkpoints / "last.ckpt")
    assert files_under(checkpoints) == before


# ---- the real command ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_cli_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``lit-colorize fit`` on a tiny ToyShapes, run to its end once (W&B offline); tests copy it."""
    root = tmp_path_factory.mktemp("finished")
    config = toyshapes_config(root / "config.yaml", num_train=64, max_epochs=1)
    result = run_cli("fit", "--config", str(config), cwd=root)
    assert result.returncode == 0, result.stdout[-3000:]
    (root / "steps.log").unlink()
    return root


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [console_script(), *args], cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300
    )


def copy_of(root: Path, tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(root, tmp_path, dirs_exist_ok=True)
    (run,) = (tmp_path / "logs" / "lit-colorize").iterdir()
    return tmp_path, run


@pytest.mark.slow
def test_cli_last_never_resumes_a_finished_run(finished_cli_run: Path, tmp_path: Path) -> None:
    root, finished = copy_of(finished_cli_run, tmp_path)
    killed = root / "logs" / "lit-colorize" / "killed-before-first-save"  # what a SIGKILL at ~40 s leaves
    killed.mkdir()
    shutil.copy(finished / "config.yaml", killed / "config.yaml")
    before = files_under(root / "logs")
    result = run_cli("fit", "--config", str(root / "config.yaml"), "--ckpt_path", "last", cwd=root)
    assert result.returncode != 0
    (line,) = [line for line in result.stdout.splitlines() if "--ckpt_path last:" in line]
    assert line.startswith("lit-colorize fit: error: --ckpt_path last: no unfinished run of this config")
    assert "1 finished" in line and "1 without last.ckpt" in line and "Traceback" not in result.stdout
    assert files_under(root / "logs") == before  # nothing written: no run, no W&B run, no checkpoint
    assert recorded_steps(root / "steps.log") == []  # stopped before training


@pytest.mark.slow
def test_cli_last_with_a_csv_run_folder(tmp_path: Path) -> None:
    """A CSV run folder (``version_0``) beside W&B runs: a W&B config does not continue it (it
    crashed on "Given value: 0"); the CSV config does, in the same folder."""
    config = toyshapes_config(tmp_path / "config.yaml", num_train=64, max_epochs=1)
    # A constant lr: OneCycleLR's step count is fixed at the start, so it cannot run past the first max_epochs.
    constant = ["--model.init_args.lr_schedule", "constant"]
    csv = ["--trainer.logger", str(REPO_ROOT / "configs" / "logger" / "csv.yaml")]
    first = run_cli("fit", "--config", str(config), *constant, *csv, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:]
    run = tmp_path / "logs" / "lit-colorize" / "version_0"
    (run / "checkpoints" / FINISHED_MARKER).unlink()  # as if killed after its last save
    before = files_under(tmp_path / "logs")

    wandb = run_cli("fit", "--config", str(config), *constant, "--ckpt_path", "last", cwd=tmp_path)
    assert wandb.returncode != 0
    assert "1 of another config (version_0)" in wandb.stdout and "Traceback" not in wandb.stdout, wandb.stdout[-3000:]
    assert files_under(tmp_path / "logs") == before

    second = run_cli("fit", "--config", str(config), *constant, *csv, "--ckpt_path", "last", "--trainer.max_epochs", "2", cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:]
    assert f"resuming {run.resolve() / 'checkpoints' / 'last.ckpt'}" in second.stdout
    assert [p.name for p in (tmp_path / "logs" / "lit-colorize").iterdir()] == ["version_0"]
    assert load(run / "checkpoints" / "last.ckpt")["global_step"] == 2 * 2  # 64 images, batch 32: 2 steps an epoch


@pytest.mark.slow
def test_cli_validate_makes_no_run(finished_cli_run: Path, tmp_path: Path) -> None:
    root, run = copy_of(finished_cli_run, tmp_path)
    before = files_under(root)
    checkpoint = run / "checkpoints" / "last.ckpt"
    result = run_cli("validate", "--config", str(root / "config.yaml"), "--ckpt_path", str(checkpoint), cwd=root)
    assert result.returncode == 0, result.stdout[-3000:]
    assert files_under(root) == before  # no run folder, W&B run, sample grid or config
    assert "val/psnr" in result.stdout and "dirpath has changed" not in result.stdout
    assert f"lit-colorize validate: evaluating {checkpoint}; the metrics are printed below, nothing is logged or written" in result.stdout
