"""Runs that get killed: real subprocesses sent SIGKILL, SIGTERM and SLURM's SIGUSR1, a kill in
the middle of a checkpoint save, and a loss that turns NaN."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from callbacks import ColorTableBuilder, RunCheckpoint
from lit_colorize import ColorizationModule
from lit_colorize.divergence import NonFiniteLossError
from tests.helpers import cli_env, console_script, quick_trainer, recorded_steps, tiny_toyshapes, toyshapes_config

pytestmark = pytest.mark.slow  # real training subprocesses killed and resumed

STEPS_PER_EPOCH = 8  # 256 training images, batch 32


def start_fit(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [console_script(), "fit", "--config", str(config), *args],
        cwd=config.parent, env=env or cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def wait_for_step(steps_log: Path, step: int, process: subprocess.Popen, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = recorded_steps(steps_log)
        if steps and steps[-1][1] >= step:
            return steps[-1][1]
        if process.poll() is not None:
            pytest.fail(f"training ended before step {step}:\n{process.stdout.read()[-4000:]}")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"step {step} not reached in {timeout}s")


def only_run(root: Path) -> Path:
    runs = [p for p in (root / "logs" / "lit-colorize").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_sigkill_mid_epoch_then_resume_from_last(tmp_path: Path) -> None:
    config = toyshapes_config(tmp_path / "config.yaml", last_every_n_train_steps=3, max_epochs=100)

    first = start_fit(config)
    wait_for_step(tmp_path / "steps.log", STEPS_PER_EPOCH + 5, first)  # into the second epoch
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    run = only_run(tmp_path)
    killed = load(run / "checkpoints" / "last.ckpt")
    resumed_from = killed["global_step"]
    assert STEPS_PER_EPOCH < resumed_from < 2 * STEPS_PER_EPOCH  # saved mid-epoch (every 3 steps), killed after

    second = subprocess.run(
        [console_script(), "fit", "--config", str(config), "--ckpt_path", "last", "--trainer.max_epochs", "3"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-4000:]
    assert f"resuming {run / 'checkpoints' / 'last.ckpt'}" in output
    assert "ColorTableBuilder:" not in output  # the table came back with the checkpoint

    # The resumed process went on from the checkpoint's step, to the end of epoch 3, in the same run.
    resumed_steps = [step for pid, step in recorded_steps(tmp_path / "steps.log") if pid != first.pid]
    assert resumed_steps == list(range(resumed_from + 1, 3 * STEPS_PER_EPOCH + 1))
    assert only_run(tmp_path) == run
    final = load(run / "checkpoints" / "last.ckpt")
    assert final["global_step"] == 3 * STEPS_PER_EPOCH
    for key in ("net.color_table.counts", "net.color_table.mean_ab", "net.color_table.mode_ab"):
        assert torch.equal(final["state_dict"][key], killed["state_dict"][key])
    # W&B goes on with the same run id: a second offline folder with the same id, for `wandb sync`.
    offline = sorted((tmp_path / "logs" / "wandb").glob(f"offline-run-*-{run.name}"))
    assert len(offline) == 2


def test_sigterm_saves_a_checkpoint_then_exits_143(tmp_path: Path) -> None:
    """Schedulers and ``&&`` chains read the exit status: a SIGTERMed fit is not a success."""
    config = toyshapes_config(tmp_path / "config.yaml", max_epochs=100)
    process = start_fit(config)
    wait_for_step(tmp_path / "steps.log", 3, process)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    stopped_at = recorded_steps(tmp_path / "steps.log")[-1][1]
    saved = load(only_run(tmp_path) / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == stopped_at, output[-3000:]
    assert process.returncode == 128 + signal.SIGTERM == 143, output[-3000:]
    assert "RunCheckpoint: SIGTERMException" in output
    assert output.index("RunCheckpoint: SIGTERMException") < output.index("lit-colorize fit: stopped by SIGTERM (exit status 143)")
    assert not (only_run(tmp_path) / "checkpoints" / "finished.json").exists()  # a stopped run stays resumable


def test_slurm_sigusr1_saves_and_requeues(tmp_path: Path) -> None:
    """Lightning's SLURMEnvironment with auto-requeue, in a fake SLURM job with a fake scontrol."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'scontrol.log'}\n")
    scontrol.chmod(0o755)
    env = cli_env()
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", SLURM_JOB_ID="4242", SLURM_JOB_NAME="colorize", SLURM_NTASKS="1",
        SLURM_NTASKS_PER_NODE="1", SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NODEID="0", SLURM_NODELIST="localhost",
    )  # fmt: skip
    config = toyshapes_config(tmp_path / "config.yaml", max_epochs=100, default_root_dir=str(tmp_path / "slurm-4242"))
    process = start_fit(config, env=env)
    wait_for_step(tmp_path / "steps.log", 3, process)
    process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not (tmp_path / "scontrol.log").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)  # what SLURM sends when the time is up
    output, _ = process.communicate(timeout=120)
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"], output[-3000:]
    hpc = list((tmp_path / "slurm-4242").glob("hpc_ckpt_*.ckpt"))
    assert len(hpc) == 1 and load(hpc[0])["global_step"] >= 3


def test_kill_during_a_checkpoint_save_keeps_the_previous_one(tmp_path: Path) -> None:
    """A process is SIGKILLed half-way through writing a new checkpoint over a good one."""
    target = tmp_path / "last.ckpt"
    script = textwrap.dedent(
        f"""
        import sys, time, torch
        from lit_colorize.checkpoint_io import AtomicCheckpointIO
        io = AtomicCheckpointIO()
        io.save_checkpoint({{"global_step": 1, "weights": torch.ones(1000)}}, {str(target)!r})
        real_save = torch.save
        def torn_save(obj, stream):
            stream.write(b"half of a checkpoint")
            stream.flush()
            print("HALF", flush=True)
            time.sleep(600)
        torch.save = torn_save
        io.save_checkpoint({{"global_step": 2, "weights": torch.zeros(1000)}}, {str(target)!r})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "HALF"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    survived = load(target)
    assert survived["global_step"] == 1 and torch.equal(survived["weights"], torch.ones(1000))
    (partial,) = tmp_path.glob(".last.*.partial.ckpt")  # the torn write, beside the target, never over it
    assert partial.read_bytes() == b"half of a checkpoint"
    from lit_colorize.checkpoint_io import AtomicCheckpointIO

    AtomicCheckpointIO().save_checkpoint({"global_step": 3}, target)
    assert load(target)["global_step"] == 3 and not list(tmp_path.glob(".last.*.partial.ckpt"))


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    class TurnsNaN(ColorizationModule):
        def compute_loss(self, batch):
            result = super().compute_loss(batch)
            if self.training and self.global_step >= 5:
                result.loss = result.loss * float("nan")
            return result

    checkpoint = RunCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val/loss", last_every_n_train_steps=2)
    trainer = quick_trainer(tmp_path, max_epochs=3, callbacks=[ColorTableBuilder(), checkpoint])
    with pytest.raises(NonFiniteLossError, match=r"train/loss is nan at global step 5 .* last good state"):
        trainer.fit(TurnsNaN(widths=(8, 16, 32)), tiny_toyshapes())
    last = load(tmp_path / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
