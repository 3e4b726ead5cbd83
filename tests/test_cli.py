"""The real console script, in subprocesses: fit, validate, predict, and an offline W&B run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lit_colorize.precision import default_precision
from tests.conftest import REPO_ROOT

CONFIG = REPO_ROOT / "configs" / "toyshapes.yaml"
SMALL_DATA = ["--data.init_args.num_train=64", "--data.init_args.num_val=32"]


def lit_colorize(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the installed ``lit-colorize`` entry point (argument lists, never a shell string)."""
    executable = shutil.which("lit-colorize", path=str(Path(sys.executable).parent)) or shutil.which("lit-colorize")
    assert executable, "the lit-colorize console script is not installed (pip install -e .)"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    result = subprocess.run([executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"lit-colorize {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def test_fast_dev_run_smoke(tmp_path: Path) -> None:
    lit_colorize("fit", "--config", str(CONFIG), "--trainer.fast_dev_run=true", *SMALL_DATA, cwd=tmp_path)


@pytest.mark.slow
def test_fit_validate_predict_with_offline_wandb(tmp_path: Path) -> None:
    lit_colorize(
        "fit", "--config", str(CONFIG), "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", *SMALL_DATA,
        cwd=tmp_path,
    )  # fmt: skip
    runs = list((tmp_path / "logs" / "lit-colorize").iterdir())
    assert len(runs) == 1
    run = runs[0]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert len(list((run / "checkpoints").glob("epoch000-val_loss*.ckpt"))) == 1
    assert list((run / "samples").glob("epoch=000-*.png"))
    saved = (run / "config.yaml").read_text()
    assert "class_path: lit_colorize.ColorizationModule" in saved
    assert f"precision: {default_precision('auto')}" in saved  # chosen for this machine, recorded for the rerun
    # The W&B run is offline, under logs/wandb, with the same id, ready for `wandb sync`.
    offline = list((tmp_path / "logs" / "wandb").glob(f"offline-run-*-{run.name}"))
    assert len(offline) == 1 and list(offline[0].glob("run-*.wandb"))
    assert list(offline[0].glob("files/media/images/val/samples_*.png"))

    checkpoint = str(run / "checkpoints" / "last.ckpt")
    result = lit_colorize(
        "validate", "--config", str(CONFIG), "--ckpt_path", checkpoint, "--trainer.logger=false", *SMALL_DATA,
        cwd=tmp_path,
    )  # fmt: skip
    assert "val/psnr" in result.stdout
    lit_colorize(
        "predict", "--config", str(CONFIG), "--ckpt_path", checkpoint, "--trainer.logger=false", *SMALL_DATA,
        "--writer.output_dir", "val_colorized", "--writer.temperatures", "[0, 1]", cwd=tmp_path,
    )  # fmt: skip
    written = sorted(p.name for p in (tmp_path / "val_colorized").iterdir())
    assert len(written) == 2 * 32 and written[:2] == ["0-000000_colorized_T0.png", "0-000000_colorized_T1.png"]


@pytest.mark.slow
def test_wrong_config_is_a_clear_error(tmp_path: Path) -> None:
    executable = shutil.which("lit-colorize", path=str(Path(sys.executable).parent))
    result = subprocess.run(
        [executable, "fit", "--config", str(CONFIG), "--model.init_args.head=gan"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert "head" in result.stderr and "gan" in result.stderr


# configs/common/: what the main jobs include (tests/test_configs.py), not a group of swappable pieces.
GROUP_CONFIGS = sorted(p for p in (REPO_ROOT / "configs").glob("*/*.yaml") if p.parent.name != "common")


@pytest.mark.slow
@pytest.mark.parametrize("group_config", [None, *GROUP_CONFIGS], ids=lambda p: "main" if p is None else f"{p.parent.name}/{p.name}")
def test_configs_parse(group_config: Path | None, tmp_path: Path) -> None:
    args = ["fit", "--config", str(CONFIG)]
    if group_config is not None:
        group = group_config.parent.name
        args += [f"--{'trainer.logger' if group == 'logger' else group}", str(group_config)]
    printed = lit_colorize(*args, "--print_config", cwd=tmp_path).stdout
    assert "class_path: lit_colorize.ColorizationModule" in printed
    if group_config is not None and group_config.name == "csv.yaml":
        assert "CSVLogger" in printed


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted((REPO_ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_main_configs_parse(config: Path, tmp_path: Path) -> None:
    subcommand = "predict" if config.name == "predict.yaml" else "fit"
    printed = lit_colorize(subcommand, "--config", str(config), "--print_config", cwd=tmp_path).stdout
    assert "class_path: lit_colorize.ColorizationModule" in printed
