"""RunCheckpoint overrides ModelCheckpoint internals, so pyproject pins the Lightning range it was
tested with. These tests fail first, with the reason, if the installed Lightning leaves that
range or changes the internals RunCheckpoint calls."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import lightning
from lightning.pytorch.callbacks import ModelCheckpoint
from packaging.requirements import Requirement
from packaging.version import Version

from callbacks import RunCheckpoint

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_installed_lightning_is_in_the_pinned_range() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pin = next(Requirement(d) for d in dependencies if Requirement(d).name == "lightning")
    assert pin.specifier, "RunCheckpoint needs Lightning pinned to the range it was tested with"
    assert Version(lightning.__version__) in pin.specifier, f"Lightning {lightning.__version__} is outside {pin}"


def test_the_modelcheckpoint_internals_it_relies_on_are_there() -> None:
    def parameters(method: object) -> list[str]:
        return list(inspect.signature(method).parameters)

    assert parameters(ModelCheckpoint._save_last_checkpoint) == ["self", "trainer", "monitor_candidates"]
    assert parameters(ModelCheckpoint._monitor_candidates) == ["self", "trainer"]
    assert parameters(ModelCheckpoint._should_save_on_train_epoch_end) == ["self", "trainer"]
    assert "_last_global_step_saved" in vars(ModelCheckpoint())
    assert issubclass(RunCheckpoint, ModelCheckpoint)
