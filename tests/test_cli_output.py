"""What a run prints into a log file: progress lines instead of Rich's bar, and none of the known noise."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from PIL import Image

import callbacks.progress
from callbacks import ColorTableBuilder, LogProgressBar, auto_progress_bar
from lit_colorize import ColorizationModule
from tests.conftest import REPO_ROOT
from tests.helpers import cli_env, console_script, parsed_config, quick_trainer, tiny_toyshapes

# Each known, harmless message of the issue, as it appeared on every run.
NOISE = [
    "You have overridden `on_after_batch_transfer`",
    "isinstance(treespec, LeafSpec)",
    "litlogger",
    "litmodels",
    "The anonymous setting has no effect",
    "callbacks used to create the checkpoint need to be provided",
    "git root logs does not exist",  # W&B, before its save_dir existed
]
TRAIN_LINE = re.compile(r"^epoch (\d+)/1 step (\d+)/4 train/loss \d+\.?\d* \d+ img/s ETA \d+:\d\d:\d\d$", re.M)


def run(args: list[str], cwd: Path) -> str:
    """``lit-colorize`` with stdout and stderr into pipes, as into a log file."""
    result = subprocess.run([console_script(), *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return output


@pytest.mark.slow
def test_a_logged_fit_and_predict_print_progress_lines_and_no_noise(tmp_path: Path) -> None:
    config = parsed_config("fit", "--config", str(REPO_ROOT / "configs" / "toyshapes.yaml"))  # with common/train.yaml
    (bar,) = [c for c in config["trainer"]["callbacks"] if c["class_path"] == "callbacks.auto_progress_bar"]
    bar["init_args"]["every_n_steps"] = 1
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(config))
    fit = run(["fit", "--config", "toy.yaml", "--trainer.max_epochs=2", "--data.init_args.num_train=64",
               "--data.init_args.num_val=32"], tmp_path)  # fmt: skip
    assert [(int(e), int(s)) for e, s in TRAIN_LINE.findall(fit)] == [(0, 1), (0, 2), (1, 3), (1, 4)], fit[-3000:]
    assert len(re.findall(r"^epoch \d step \d validation: .*val/loss \d", fit, flags=re.M)) == 2
    assert not re.search(r"Epoch \d+/\d+ +━", fit) and "it/s" not in fit  # no Rich bar
    assert "smaller than the logging interval" in fit  # a real warning still shows
    (checkpoint,) = (tmp_path / "logs" / "lit-colorize").glob("*/checkpoints/last.ckpt")
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (48, 32), (120, 120, 120)).save(tmp_path / "photos" / "a.png")
    predict = run(["predict", "--config", str(REPO_ROOT / "configs" / "predict.yaml"), "--ckpt_path", str(checkpoint),
                   "--data.inputs", "[photos]", "--writer.output_dir", "out"], tmp_path)  # fmt: skip
    assert re.search(r"^predict: 1 batches in \d+:\d\d:\d\d$", predict, flags=re.M), predict[-3000:]
    for output in (fit, predict):
        assert [message for message in NOISE if message in output] == []


def test_log_progress_bar_prints_every_n_steps(tmp_path: Path) -> None:
    stream = io.StringIO()
    trainer = quick_trainer(
        tmp_path, enable_progress_bar=True, limit_train_batches=4, limit_val_batches=1, num_sanity_val_steps=0,
        callbacks=[ColorTableBuilder(), LogProgressBar(every_n_steps=2, every_n_seconds=3600, stream=stream)],
    )  # fmt: skip
    trainer.fit(ColorizationModule(widths=(8, 16, 32)), tiny_toyshapes())
    lines = stream.getvalue().splitlines()
    assert [line.split(" train/loss ")[0] for line in lines[:2]] == ["epoch 0/0 step 2/4", "epoch 0/0 step 4/4"]
    last_loss = float(trainer.progress_bar_metrics["train/loss_step"])
    assert f"train/loss {last_loss:.4g} " in lines[1] and lines[1].endswith("ETA 0:00:00")
    assert lines[2].startswith("epoch 0 step 4 validation: ") and "val/loss" in lines[2]


class FakeClock:
    """``time.monotonic`` for the progress module: what the test says the time is."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_the_eta_follows_the_recent_pace_not_the_whole_run_average(monkeypatch) -> None:
    """50 slow steps (10 s each: warm-up), then 50 fast ones (1 s): at step 100 of 1000 the
    remaining 900 steps take 900 s at the recent pace; the whole-run average (5.5 s a step)
    would say 4950 s (1:22:30)."""
    clock = FakeClock()
    monkeypatch.setattr(callbacks.progress, "time", clock)
    stream = io.StringIO()
    bar = LogProgressBar(every_n_steps=50, every_n_seconds=1e9, stream=stream, eta_window=20)
    trainer = SimpleNamespace(global_step=0, estimated_stepping_batches=1000, current_epoch=0, max_epochs=1,
                              loggers=[], progress_bar_metrics={"train/loss_step": 2.5})  # fmt: skip
    bar.on_train_start(trainer, None)
    batch = torch.zeros(4, 1, 8, 8)
    for step in range(1, 101):
        clock.now += 10.0 if step <= 50 else 1.0
        trainer.global_step = step
        bar.on_train_batch_end(trainer, None, None, batch, step - 1)
    first, second = stream.getvalue().splitlines()
    assert first == "epoch 0/0 step 50/1000 train/loss 2.5 0 img/s ETA 2:38:20"  # 950 steps x 10 s = 9500 s
    assert second == "epoch 0/0 step 100/1000 train/loss 2.5 4 img/s ETA 0:15:00"  # 900 steps x 1 s


def test_accumulated_batches_count_once_in_the_pace() -> None:
    pace = callbacks.progress.RecentPace(window=2)
    pace.reset(0.0, 10)
    assert pace.seconds_per_step() == float("inf")
    for now, step in [(4.0, 11), (5.0, 11), (6.0, 12), (7.0, 13)]:  # step 11 twice: two batches, one step
        pace.mark(now, step)
    assert pace.seconds_per_step() == (7.0 - 4.0) / (13 - 11)  # the last two steps only


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stdout, expected", [(_Terminal(), RichProgressBar), (io.StringIO(), LogProgressBar)], ids=["tty", "file"])
def test_auto_progress_bar_picks_rich_only_in_a_terminal(stdout: io.StringIO, expected: type, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdout", stdout)
    assert type(auto_progress_bar()) is expected


@pytest.mark.parametrize("config", ["toyshapes.yaml", "landscape.yaml"])
def test_disabling_the_progress_bar_drops_the_configs_bar(config: str, tmp_path: Path, monkeypatch) -> None:
    """Lightning refuses a progress-bar callback with ``enable_progress_bar=False``; the configs
    list one, so the CLI must drop it rather than fail."""
    from lit_colorize.cli import ColorizationCLI

    monkeypatch.chdir(tmp_path)
    args = ["--config", str(REPO_ROOT / "configs" / config), "--trainer.enable_progress_bar=false",
            "--trainer.logger=false", "--data.init_args.num_workers=0"]  # fmt: skip
    cli = ColorizationCLI(args=args, run=False)
    assert cli.trainer.progress_bar_callback is None
    assert not [c for c in cli.trainer.callbacks if isinstance(c, ProgressBar)]
    assert [type(c).__name__ for c in cli.trainer.callbacks if type(c).__name__ == "RunCheckpoint"] == ["RunCheckpoint"]


def predict_in_process(args: list[str]) -> int:
    """``lit-colorize`` in this process: its exit status as the shell would see it."""
    from lit_colorize.cli import main

    try:
        main(args)
    except SystemExit as exit:
        return 0 if exit.code in (None, 0) else exit.code if isinstance(exit.code, int) else 1
    return 0


def test_a_rerun_skips_existing_outputs_by_name_and_exits_0(tmp_path: Path, checkpoint: Path, capsys) -> None:
    """Before: each existing output was a FAILED line and the rerun exited 1. Now it is kept,
    named once, and counts as done; only a real failure makes the exit status 1."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, shade in [("a.png", 90), ("b.png", 160)]:
        Image.new("RGB", (40, 32), (shade, shade, shade)).save(photos / name)
    out = tmp_path / "out"
    args = ["predict", "--config", str(REPO_ROOT / "configs" / "predict.yaml"), "--ckpt_path", str(checkpoint),
            "--data.inputs", f"[{photos}]", "--writer.output_dir", str(out), "--writer.temperatures", "[0.8]",
            "--data.num_workers", "0"]  # fmt: skip
    assert predict_in_process(args) == 0
    kept, redone = out / "a_colorized_T0.8.png", out / "b_colorized_T0.8.png"
    assert sorted(p.name for p in out.iterdir()) == [kept.name, redone.name]
    before = kept.stat().st_mtime_ns
    redone.unlink()
    capsys.readouterr()

    assert predict_in_process(args) == 0
    printed = capsys.readouterr().out
    advice = "exists, skipped (pass --skip_existing to skip quietly or --overwrite to replace)"
    assert printed.count(advice) == 1 and f"ColorizedPhotoWriter: {kept} {advice}" in printed
    assert "FAILED" not in printed and "wrote 1 images" in printed and "kept 1 that existed" in printed
    assert redone.is_file() and kept.stat().st_mtime_ns == before

    assert predict_in_process([*args, "--skip_existing"]) == 0  # quietly
    printed = capsys.readouterr().out
    assert advice not in printed and "wrote 0 images" in printed and "kept 2 that existed" in printed

    (photos / "c.png").write_bytes(b"not a png")  # one real failure among kept outputs: exit 1
    assert predict_in_process(args) == 1
    printed = capsys.readouterr().out
    assert printed.count(advice) == 2 and f"FAILED {photos / 'c.png'}: " in printed and "1 failed" in printed
    assert kept.stat().st_mtime_ns == before


def test_predict_help_states_the_exit_rule(capsys) -> None:
    assert predict_in_process(["predict", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Exit status: 0 when every photo and video was written or its outputs existed already" in help_text
    assert "1 when any of them failed" in help_text


def test_predict_says_once_which_hints_file_each_photo_took(tmp_path: Path, capsys) -> None:
    """A photo with a sidecar, one named in ``--data.hints``, one without hints; two
    temperatures (two outputs a photo), still one line a photo. Before: no word of it."""
    import json

    from tests.helpers import fitted_module

    _, _, trainer = fitted_module(tmp_path / "run", widths=(8, 16, 32), hints=True)
    checkpoint = tmp_path / "guided.ckpt"
    trainer.save_checkpoint(checkpoint)
    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (40, 32), (128, 128, 128)).save(photos / name)
    hint = {"x": 5, "y": 5, "color": "#ff0000"}
    (photos / "a.hints.json").write_text(json.dumps([hint, {**hint, "x": 30}, {**hint, "y": 20}]))
    mapping = tmp_path / "hints.json"
    mapping.write_text(json.dumps({str(photos / "b.png"): [hint]}))
    args = ["predict", "--config", str(REPO_ROOT / "configs" / "predict.yaml"), "--ckpt_path", str(checkpoint),
            "--data.inputs", f"[{photos}]", "--data.hints", str(mapping), "--writer.output_dir", str(tmp_path / "out"),
            "--writer.temperatures", "[0, 1]", "--data.num_workers", "0"]  # fmt: skip
    assert predict_in_process(args) == 0
    printed = capsys.readouterr().out
    assert "wrote 6 images" in printed
    lines = [line for line in printed.splitlines() if " hint" in line]
    assert lines == [f"{photos / 'a.png'}: 3 hints from a.hints.json", f"{photos / 'b.png'}: 1 hint from {mapping}"]


# Lightning's and W&B's lines on every evaluation or predict call (issue 31), and terminal colors.
EVALUATION_NOISE = ["No seed found", "Seed set to", "GPU available", "TPU available", "Restoring states", "git root",
                    "does not exist", "wandb", "Total FLOPs", "The dirpath has changed", "Validate metric", "\x1b["]  # fmt: skip


@pytest.mark.slow
def test_predict_and_validate_print_their_results_and_nothing_else(tmp_path: Path, checkpoint: Path) -> None:
    """Output into pipes, as into a log file: predict with its own config and with a training
    config (which has a W&B logger), and validate, whose metrics used to come twice."""
    Image.new("RGB", (48, 32), (120, 120, 120)).save(tmp_path / "a.png")
    predict = run(["predict", "--config", str(REPO_ROOT / "configs" / "predict.yaml"), "--ckpt_path", str(checkpoint),
                   "--data.inputs", "[a.png]", "--writer.output_dir", "out"], tmp_path)  # fmt: skip
    toyshapes = ["--config", str(REPO_ROOT / "configs" / "toyshapes.yaml"), "--ckpt_path", str(checkpoint),
                 "--data.init_args.num_train=32", "--data.init_args.num_val=8"]  # fmt: skip
    predict_toyshapes = run(["predict", *toyshapes, "--writer.output_dir", "toy_out"], tmp_path)
    validate = run(["validate", *toyshapes], tmp_path)

    for output in (predict, predict_toyshapes, validate):
        assert [noise for noise in EVALUATION_NOISE if noise in output] == [], output
        assert f"Loaded model weights from the checkpoint at {checkpoint}" in output
    assert re.search(r"^predict: 1 batches in \d+:\d\d:\d\d\nColorizedPhotoWriter: wrote 1 images to out$", predict, re.M), predict
    assert "ColorizedPhotoWriter: wrote 8 images to toy_out" in predict_toyshapes
    assert not (tmp_path / "logs").exists()  # predict made no W&B run
    assert f"lit-colorize validate: evaluating {checkpoint}" in validate
    assert validate.count("val/psnr") == 1 and re.search(r"^validation: val/acc \S+ .* val/psnr \d", validate, re.M), validate
