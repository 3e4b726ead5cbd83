"""Shared fixtures: the real photos beside the checkout, and quiet, offline runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real photos not found at {SHARED_DATA} (the read-only ../shared/data beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A briefly trained classifier (324 bins, bin table built), saved as Lightning saves it.
    Trained once per session and shared: tests read it, copy it to change it."""
    from tests.helpers import fitted_module

    root = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    _, _, trainer = fitted_module(root, widths=(8, 16, 32))
    path = root / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


def requires_cuda(test):
    """Marks ``test`` as a GPU test (``pytest -m gpu``), skipped where no CUDA GPU is present."""
    return pytest.mark.gpu(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(test))
