"""``--ckpt_path last`` across processes: continue the run a killed job left, and no other.

Lightning resolves ``ckpt_path="last"`` inside the *current* run's checkpoint folder, which a
fresh process (a new W&B run id) has never written to. Here ``last`` resolves to:

* **a run the user names**: the logger's run (``id`` for W&B, ``version`` otherwise, e.g.
  ``slurm-$SLURM_JOB_ID``), a checkpoint callback's ``dirpath``, or, without a logger,
  ``default_root_dir/checkpoints``. Its ``last.ckpt`` is resumed; when the named run has no
  ``last.ckpt`` yet, it starts from scratch under that name. That is the first start of a
  requeueable job (``scripts/slurm/train.sbatch`` passes ``--ckpt_path last`` on every start)
  and cannot touch another run, because the name is the user's.
* **else the one unfinished run of the same config** under the logger's folder: a run folder
  whose ``config.yaml`` has the same ``model`` and ``data`` sections and the same logger class
  as the current config, with a ``last.ckpt`` and no :data:`FINISHED_MARKER`. The rest of the
  trainer section may differ, so a resume can change ``max_epochs``, devices or callbacks;
  model and data are what make two runs the same experiment, and the logger where it goes
  on. When there is no such run, or more than one, ``fit`` stops before
  anything is built, with one line that says what was looked for, what was found, and how to
  choose (:class:`ResumeError`); it never guesses, because a wrong guess continues (and
  writes into) somebody else's run.

A run is *finished* when its fit returned normally (``max_epochs``/``max_steps``/``max_time``
reached, or stopped early): :class:`~callbacks.RunCheckpoint` then writes
``checkpoints/finished.json``. The marker is the record of that fact. The checkpoint's loop
state cannot tell it: a resume may raise ``max_epochs``, and early stopping ends a run before
it. A killed, crashed or SIGTERMed fit writes no marker. A finished run is never resumed and
never written to again (``RunCheckpoint`` refuses to set up in its folder); training on from
it is a new run started with ``--ckpt_path <its last.ckpt>``.

The logger is pointed at the resumed run, so W&B continues the same run id and checkpoints,
samples and config stay in one folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace
from lightning.pytorch.utilities import rank_zero_info

from lit_colorize.atomic import atomic_write
from lit_colorize.errors import UserError

CHECKPOINT_CALLBACKS = ("ModelCheckpoint", "RunCheckpoint")
FINISHED_MARKER = "finished.json"
LAST = "last.ckpt"
SAME_RUN_SECTIONS = ("model", "data")


class ResumeError(UserError, ValueError):
    """``--ckpt_path last`` cannot tell which run to continue, or the run is finished."""


class FinishedRunError(UserError, FileExistsError):
    """A fit would write into the checkpoint folder of a run that has finished."""


def finished_marker(checkpoint_dir: Path | str) -> Path:
    return Path(checkpoint_dir) / FINISHED_MARKER


def read_finished(checkpoint_dir: Path | str) -> dict[str, Any] | None:
    """What the finished marker in ``checkpoint_dir`` recorded, or None when the run is not finished."""
    marker = finished_marker(checkpoint_dir)
    if not marker.is_file():
        return None
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        recorded = None
    return recorded if isinstance(recorded, dict) else {}  # a damaged marker still marks the run finished


def mark_finished(checkpoint_dir: Path | str, global_step: int, epoch: int) -> Path:
    """Record that the fit writing to ``checkpoint_dir`` returned normally (temp file, rename)."""
    marker = finished_marker(checkpoint_dir)
    marker.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(marker, "w") as stream:
        stream.write(json.dumps({"global_step": global_step, "epoch": epoch}) + "\n")
    return marker


def finished_error(checkpoint_dir: Path, recorded: Mapping[str, Any]) -> str:
    step = f" at global step {recorded['global_step']}" if "global_step" in recorded else ""
    return (
        f"the run in {checkpoint_dir} finished{step} ({finished_marker(checkpoint_dir)}); a finished run is never "
        f"resumed or written to. To train on from it, start a new run from its checkpoint: "
        f"--ckpt_path {checkpoint_dir / LAST}, with another run id or checkpoint folder"
    )


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


@dataclass
class _Run:
    """One run folder under the logger's folder, as ``last`` sees it."""

    folder: Path
    last: Path | None
    finished: bool
    same_config: bool | None  # None: no readable config.yaml

    @property
    def resumable(self) -> bool:
        return self.last is not None and not self.finished and bool(self.same_config)


def _sections(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a resolved config that make two runs the same experiment, as plain data:
    model, data, and the logger's class (a CSV run is not continued as a W&B run)."""
    sections = {key: config.get(key) for key in SAME_RUN_SECTIONS}
    sections["logger"] = _get(_logger(config.get("trainer")), "class_path")
    return json.loads(json.dumps(sections, default=str))


def _saved_config(run: Path) -> Mapping[str, Any] | None:
    try:
        saved = yaml.safe_load((run / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return saved if isinstance(saved, dict) else None


def _scan(runs: Path, current: Mapping[str, Any]) -> list[_Run]:
    wanted = _sections(current)
    found = []
    for folder in sorted(p for p in runs.glob("*") if p.is_dir()) if runs.is_dir() else []:
        last = folder / "checkpoints" / LAST
        saved = _saved_config(folder)
        found.append(
            _Run(
                folder=folder,
                last=last if last.is_file() else None,
                finished=read_finished(folder / "checkpoints") is not None,
                same_config=None if saved is None else _sections(saved) == wanted,
            )
        )
    return found


def _names(runs: list[_Run], limit: int = 4) -> str:
    names = [run.folder.name for run in runs]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _summary(runs: list[_Run]) -> str:
    groups = {
        "finished": [r for r in runs if r.finished],
        "without last.ckpt": [r for r in runs if not r.finished and r.last is None],
        "of another config": [r for r in runs if not r.finished and r.last is not None and r.same_config is False],
        "without config.yaml": [r for r in runs if not r.finished and r.last is not None and r.same_config is None],
        "resumable": [r for r in runs if r.resumable],
    }
    parts = [f"{len(group)} {label} ({_names(group)})" for label, group in groups.items() if group]
    return "; ".join(parts) or "no run folders"


def _run_key(logger: Any) -> str:
    return "id" if str(logger.class_path).endswith("WandbLogger") else "version"


def _named_run(trainer: Any, default_root: Path) -> tuple[Path, str] | None:
    """The checkpoint folder of the run the config names, and how it is named; None when unnamed."""
    dirpath = _explicit_dirpath(trainer)
    if dirpath is not None:
        return dirpath, "the checkpoint callback's dirpath"
    logger = _logger(trainer)
    if logger is None:
        return default_root / "checkpoints", "default_root_dir (no logger)"
    init_args = logger.init_args
    run = _get(init_args, _run_key(logger)) or _get(init_args, "version")
    if run is None:
        return None
    run_name = str(run) if isinstance(run, str) else f"version_{run}"
    return _runs_folder(logger, default_root) / run_name / "checkpoints", f"the logger's run {run_name!r}"


def _runs_folder(logger: Any, default_root: Path) -> Path:
    init_args = logger.init_args
    is_wandb = str(logger.class_path).endswith("WandbLogger")
    name = _get(init_args, "project" if is_wandb else "name") or "lightning_logs"
    return Path(_get(init_args, "save_dir") or default_root) / name


def resolve_last_checkpoint(fit_config: Namespace, current_config: Mapping[str, Any]) -> Path | None:
    """Replace ``ckpt_path: last`` in a ``fit`` config by the checkpoint to resume, or by None for
    the first start of a named run, and point the logger at that run. Returns the checkpoint.

    ``current_config`` is the resolved config as plain data (what ``config.yaml`` will hold);
    its ``model`` and ``data`` sections and logger class are compared with each run's saved
    ``config.yaml``.
    Raises :class:`ResumeError` when the run is finished, or, for an unnamed run, when no
    unfinished run of this config, or more than one, has a ``last.ckpt``.
    """
    trainer = fit_config.trainer
    default_root = Path(_get(trainer, "default_root_dir") or ".")
    logger = _logger(trainer)
    named = _named_run(trainer, default_root)
    if named is not None:
        checkpoint_dir, how = named
        recorded = read_finished(checkpoint_dir)
        if recorded is not None:
            raise ResumeError(f"--ckpt_path last: {finished_error(checkpoint_dir, recorded)}")
        found = checkpoint_dir / LAST if (checkpoint_dir / LAST).is_file() else None
        if found is None:
            rank_zero_info(f"--ckpt_path last: no {LAST} in {checkpoint_dir} ({how}) yet; starting that run from scratch")
    else:
        runs = _runs_folder(logger, default_root)
        scanned = _scan(runs, current_config)
        resumable = [run for run in scanned if run.resumable]
        key = _run_key(logger)
        choose = f"choose with --ckpt_path PATH or --trainer.logger.init_args.{key} RUN"
        if not resumable:
            raise ResumeError(
                f"--ckpt_path last: no unfinished run of this config (same model, data and logger) with a {LAST} under "
                f"{runs}/ (found: {_summary(scanned)}); start a new run without --ckpt_path, or {choose}"
            )
        if len(resumable) > 1:
            raise ResumeError(
                f"--ckpt_path last: {len(resumable)} unfinished runs of this config under {runs}/ "
                f"({_names(resumable, limit=10)}); {choose}"
            )
        (run,) = resumable
        found = run.last
        logger.init_args[key] = run.folder.name  # a string: CSV/TensorBoard take "version_3" as the folder name
    if found is not None and logger is not None and str(logger.class_path).endswith("WandbLogger"):
        logger.dict_kwargs = {**(_get(logger, "dict_kwargs") or {}), "resume": "allow"}
    if found is not None:
        rank_zero_info(f"--ckpt_path last: resuming {found.resolve()}")
    fit_config.ckpt_path = None if found is None else str(found)
    return found
