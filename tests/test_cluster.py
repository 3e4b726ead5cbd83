"""The SLURM script and the trainer configs agree and parse (which run `--ckpt_path last` resumes: tests/test_resume.py)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.helpers import cli_env, console_script

pytestmark = pytest.mark.slow  # lit-colorize subprocesses with SLURM and DDP configs

SBATCH = REPO_ROOT / "scripts" / "slurm" / "train.sbatch"
SLURM_CONFIG = REPO_ROOT / "configs" / "trainer" / "slurm.yaml"


def sbatch_directives(script: Path) -> dict[str, str]:
    directives = {}
    for line in script.read_text().splitlines():
        match = re.match(r"#SBATCH\s+--([\w-]+)(?:=(\S+))?", line)
        if match:
            directives[match.group(1)] = match.group(2) or ""
    return directives


def srun_command(script: Path) -> list[str]:
    text = script.read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.strip().startswith("srun ")]
    return shlex.split(line)


def test_sbatch_directives_agree_with_the_slurm_trainer_config() -> None:
    directives = sbatch_directives(SBATCH)
    trainer = yaml.safe_load(SLURM_CONFIG.read_text())
    assert int(directives["nodes"]) == trainer["num_nodes"] == 2
    assert int(directives["ntasks-per-node"]) == int(directives["gpus-per-node"]) == trainer["devices"] == 4
    (environment,) = trainer["plugins"]
    assert environment["class_path"].endswith("SLURMEnvironment") and environment["init_args"]["auto_requeue"] is True
    signal_name, seconds = directives["signal"].split("@")
    assert signal_name == environment["init_args"]["requeue_signal"] == "SIGUSR1" and int(seconds) >= 60
    assert "requeue" in directives
    command = srun_command(SBATCH)
    assert command[1:3] == ["lit-colorize", "fit"]
    assert command[command.index("--trainer") + 1] == "configs/trainer/slurm.yaml"
    assert command[command.index("--ckpt_path") + 1] == "last"
    assert subprocess.run(["bash", "-n", str(SBATCH)]).returncode == 0


def test_sbatch_command_parses_with_every_config(tmp_path: Path) -> None:
    """The srun line, as SLURM would expand it, is a valid lit-colorize command."""
    command = srun_command(SBATCH)
    args = [a.replace("${CONFIG}", "configs/landscape.yaml").replace("${RUN_ROOT}", "logs/slurm/77")
            .replace("${SLURM_JOB_ID}", "77") for a in command[2:] if a != '"$@"' and a != "$@"]  # fmt: skip
    args = [a for a in args if a != "--ckpt_path" and a != "last"]
    result = subprocess.run(
        [console_script(), *args, "--print_config"], cwd=REPO_ROOT, env=cli_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = yaml.safe_load(result.stdout)
    assert printed["trainer"]["num_nodes"] == 2 and printed["trainer"]["devices"] == 4
    assert printed["trainer"]["logger"]["init_args"]["id"] == "slurm-77"
    assert printed["trainer"]["default_root_dir"] == "logs/slurm/77"


def test_ddp_trainer_config_merges_into_a_main_config(tmp_path: Path) -> None:
    result = subprocess.run(
        [console_script(), "fit", "--config", "configs/toyshapes.yaml", "--trainer", "configs/trainer/ddp.yaml", "--print_config"],
        cwd=REPO_ROOT, env=cli_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trainer = yaml.safe_load(result.stdout)["trainer"]
    assert trainer["strategy"] == "ddp" and trainer["devices"] == -1
    assert any(c["class_path"] == "callbacks.RunCheckpoint" for c in trainer["callbacks"])  # kept from the main config
