"""The model shipped with the package, so a photo can be colorized with no training.

It is a slim Lightning checkpoint (weights, bin color table and hyperparameters; no optimizer
state) under ``lit_colorize/weights/``, installed with the package as package data and read
like any other checkpoint (``weights_only=True``). ``configs/recipe.yaml`` trains it;
``docs/MODEL_CARD.md`` says on what, how well and where it fails. ``lit-colorize predict``
and ``export`` use it when no ``--ckpt_path`` is given, ``Colorizer.pretrained()`` in Python.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import torch

from lit_colorize.atomic import atomic_write
from lit_colorize.errors import CheckpointError

PRETRAINED_NAME = "landscape64_v1.ckpt"
#: The same recipe trained with color hints (configs/hints.yaml): takes hints, and colorizes
#: without them too. The web page's default, so that a click can set a color.
PRETRAINED_HINTS_NAME = "landscape64_hints_v1.ckpt"
#: What a shipped checkpoint keeps of a training one: enough for Lightning and for Colorizer.
SHIPPED_KEYS = ("state_dict", "hyper_parameters", "pytorch-lightning_version", "epoch", "global_step")
MAX_SHIPPED_BYTES = 10 * 1024 * 1024


def pretrained_checkpoint(name: str | None = None) -> Path:
    """The path of a shipped checkpoint (default: the automatic model, :data:`PRETRAINED_NAME`);
    CheckpointError if this installation lacks it."""
    resource = files("lit_colorize") / "weights" / (name or PRETRAINED_NAME)
    with as_file(resource) as path:  # a real file for an installed package (no zip import here)
        if not path.is_file():
            raise CheckpointError(
                f"the shipped model {path} is missing from this installation; reinstall lit-colorize, "
                "or pass --ckpt_path to a checkpoint of your own"
            )
        return Path(path)


def default_serve_checkpoint() -> Path:
    """The web page's model: the shipped hint model, or the automatic one where it is absent."""
    try:
        return pretrained_checkpoint(PRETRAINED_HINTS_NAME)
    except CheckpointError:
        return pretrained_checkpoint()


def slim_checkpoint(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A training checkpoint without optimizer, loop and callback state (a third of the size for
    Adam), with the weights as contiguous fp32 copies: what is needed to colorize and nothing else."""
    missing = [key for key in SHIPPED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"not a Lightning training checkpoint: it lacks {', '.join(missing)}")
    slim = {key: checkpoint[key] for key in SHIPPED_KEYS}
    slim["state_dict"] = {
        name: (tensor.float() if tensor.is_floating_point() else tensor).contiguous().clone()
        for name, tensor in checkpoint["state_dict"].items()
    }
    return slim


def write_slim_checkpoint(source: str | Path, target: str | Path) -> int:
    """Write :func:`slim_checkpoint` of ``source`` to ``target`` atomically; its size in bytes.
    Refuses (CheckpointError) a result over :data:`MAX_SHIPPED_BYTES`, and leaves no file then."""
    from lit_colorize.colorizer import read_checkpoint  # noqa: PLC0415 - colorizer imports the module

    slim = slim_checkpoint(read_checkpoint(source))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as stream:
        torch.save(slim, stream)
        size = stream.tell()
        if size > MAX_SHIPPED_BYTES:
            raise CheckpointError(f"{source} slims to {size / 2**20:.1f} MB, over the {MAX_SHIPPED_BYTES >> 20} MB a shipped model may take")
    return size
