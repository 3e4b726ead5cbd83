"""``--ckpt_path last`` across processes: find the run a killed job left, and continue it.

Lightning resolves ``ckpt_path="last"`` inside the *current* run's checkpoint folder, which a
fresh process (a new W&B run id) has never written to. Here "last" means: the given run's
``last.ckpt`` when the logger names its run (``id`` for W&B, ``version`` otherwise, e.g.
``slurm-$SLURM_JOB_ID``), else the most recently written ``last.ckpt`` of any run under the
logger's folder. The logger is pointed at that run, so W&B continues the same run id and
checkpoints, samples and config stay in one folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.utilities import rank_zero_info

CHECKPOINT_CALLBACKS = ("ModelCheckpoint", "RunCheckpoint")


def _get(namespace: Any, key: str, default: Any = None) -> Any:
    return namespace.get(key, default) if isinstance(namespace, (Namespace, dict)) else default


def _logger(trainer_config: Any) -> Any:
    logger = _get(trainer_config, "logger")
    if isinstance(logger, list):
        logger = logger[0] if logger else None
    return logger if _get(logger, "class_path") else None


def _explicit_dirpath(trainer_config: Any) -> Path | None:
    for callback in _get(trainer_config, "callbacks") or []:
        if str(_get(callback, "class_path", "")).endswith(CHECKPOINT_CALLBACKS):
            dirpath = _get(_get(callback, "init_args"), "dirpath")
            if dirpath:
                return Path(dirpath)
    return None


def _newest(paths: list[Path]) -> Path | None:
    existing = [p for p in paths if p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime_ns) if existing else None


def resolve_last_checkpoint(fit_config: Namespace) -> Path | None:
    """Replace ``ckpt_path: last`` in a ``fit`` config by the checkpoint to resume (or None for
    a new run) and point the logger at that checkpoint's run. Returns the checkpoint."""
    trainer = fit_config.trainer
    default_root = Path(_get(trainer, "default_root_dir") or ".")
    dirpath = _explicit_dirpath(trainer)
    logger = _logger(trainer)
    found: Path | None = None
    if dirpath is not None:
        found = _newest(list(dirpath.glob("last*.ckpt")))
        where = str(dirpath)
    elif logger is None:
        found = _newest(list((default_root / "checkpoints").glob("last*.ckpt")))
        where = str(default_root / "checkpoints")
    else:
        init_args = logger.init_args
        is_wandb = str(logger.class_path).endswith("WandbLogger")
        run_key = "id" if is_wandb else "version"
        name = _get(init_args, "project" if is_wandb else "name") or "lightning_logs"
        runs = Path(_get(init_args, "save_dir") or default_root) / name
        run = _get(init_args, run_key) or (_get(init_args, "version") if is_wandb else None)
        if run is not None:
            found = _newest(list((runs / str(run) / "checkpoints").glob("last*.ckpt")))
            where = str(runs / str(run) / "checkpoints")
        else:
            found = _newest(list(runs.glob("*/checkpoints/last*.ckpt")))
            where = str(runs / "*" / "checkpoints")
            if found is not None:
                run_name = found.parent.parent.name
                init_args[run_key] = int(run_name.removeprefix("version_")) if run_name.startswith("version_") and run_name[8:].isdigit() else run_name
        if found is not None and is_wandb:
            logger.dict_kwargs = {**(_get(logger, "dict_kwargs") or {}), "resume": "allow"}
    if found is None:
        rank_zero_info(f"--ckpt_path last: no last.ckpt in {where}; starting a new run")
    else:
        rank_zero_info(f"--ckpt_path last: resuming {found.resolve()}")
    fit_config.ckpt_path = None if found is None else str(found)
    return found
