"""The model shipped with the package, so a photo can be colorized with no training.

It is a slim Lightning checkpoint (weights, bin color table and hyperparameters; no optimizer
state) under ``lit_colorize/weights/``, installed with the package as package data and read
like any other checkpoint (``weights_only=True``). Each shipped file's SHA-256 is recorded
beside it (``weights/SHA256SUMS``, as ``sha256sum`` writes it: ``sha256sum -c`` checks it too)
and checked whenever a shipped model is asked for by name, so a damaged file (a flipped bit
colors everything cyan) is refused with one line that says to reinstall. ``configs/recipe.yaml`` trains it;
``docs/MODEL_CARD.md`` says on what, how well and where it fails. ``lit-colorize predict``
and ``export`` use it when no ``--ckpt_path`` is given, ``Colorizer.pretrained()`` in Python.
"""

from __future__ import annotations

import hashlib
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import torch

from lit_colorize.atomic import atomic_write
from lit_colorize.checkpoint_io import read_checkpoint
from lit_colorize.errors import CheckpointError

PRETRAINED_NAME = "landscape64_v1.ckpt"
#: The same recipe trained with color hints (configs/hints.yaml): takes hints, and colorizes
#: without them too. The web page's default, so that a click can set a color.
PRETRAINED_HINTS_NAME = "landscape64_hints_v1.ckpt"
#: What a shipped checkpoint keeps of a training one: enough for Lightning and for Colorizer.
SHIPPED_KEYS = ("state_dict", "hyper_parameters", "pytorch-lightning_version", "epoch", "global_step")
MAX_SHIPPED_BYTES = 10 * 1024 * 1024
#: The SHA-256 of every shipped checkpoint, beside them: ``<hex>  <file name>`` a line.
CHECKSUMS_NAME = "SHA256SUMS"
REINSTALL = "reinstall lit-colorize (pip install --force-reinstall lit-colorize, or git checkout lit_colorize/weights in a clone)"


def weights_folder() -> Path:
    """The shipped checkpoints' folder in this installation (a real folder: no zip import here)."""
    with as_file(files("lit_colorize") / "weights") as path:
        return Path(path)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded_checksums(folder: Path) -> dict[str, str]:
    """File name -> SHA-256 hex as recorded in ``folder/SHA256SUMS`` (empty when there is none)."""
    path = folder / CHECKSUMS_NAME
    if not path.is_file():
        return {}
    records = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.strip().partition("  ")
        if digest and name:
            records[name.lstrip("*")] = digest.lower()
    return records


def verify_shipped(path: Path) -> Path:
    """``path`` when its SHA-256 is the one recorded for its name beside it; else CheckpointError
    naming the file and the fix (a damaged or replaced file is never loaded silently)."""
    expected = recorded_checksums(path.parent).get(path.name)
    if expected is None:
        raise CheckpointError(
            f"the shipped model {path} has no SHA-256 recorded in {path.parent / CHECKSUMS_NAME}, so it cannot be "
            f"checked; {REINSTALL}, or pass --ckpt_path to a checkpoint of your own"
        )
    actual = file_sha256(path)
    if actual != expected:
        raise CheckpointError(
            f"the shipped model {path} is damaged: its SHA-256 is {actual[:12]}..., not the {expected[:12]}... "
            f"recorded when it shipped; {REINSTALL}"
        )
    return path


def record_checksum(path: str | Path) -> str:
    """Record ``path``'s SHA-256 in the SHA256SUMS beside it (added, or replacing its old line,
    atomically); what ``scripts/ship_model.py`` does for every model it ships. Returns the hex."""
    path = Path(path)
    records = recorded_checksums(path.parent) | {path.name: file_sha256(path)}
    with atomic_write(path.parent / CHECKSUMS_NAME, "w", encoding="utf-8") as stream:
        stream.writelines(f"{digest}  {name}\n" for name, digest in sorted(records.items()))
    return records[path.name]


def pretrained_checkpoint(name: str | None = None) -> Path:
    """The path of a shipped checkpoint (default: the automatic model, :data:`PRETRAINED_NAME`),
    its SHA-256 checked (:func:`verify_shipped`); CheckpointError if this installation lacks it
    or it is damaged."""
    path = weights_folder() / (name or PRETRAINED_NAME)
    if not path.is_file():
        raise CheckpointError(
            f"the shipped model {path} is missing from this installation; reinstall lit-colorize, "
            "or pass --ckpt_path to a checkpoint of your own"
        )
    return verify_shipped(path)


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


def write_slim_checkpoint(source: str | Path, target: str | Path, hyperparameters: dict[str, Any] | None = None) -> int:
    """Write :func:`slim_checkpoint` of ``source`` to ``target`` atomically, with
    ``hyperparameters`` set (e.g. the measured ``predict_working_size``); its size in bytes.
    Refuses (CheckpointError) a result over :data:`MAX_SHIPPED_BYTES`, and leaves no file then."""
    slim = slim_checkpoint(read_checkpoint(source))
    slim["hyper_parameters"] = {**slim["hyper_parameters"], **(hyperparameters or {})}
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as stream:
        torch.save(slim, stream)
        size = stream.tell()
        if size > MAX_SHIPPED_BYTES:
            raise CheckpointError(f"{source} slims to {size / 2**20:.1f} MB, over the {MAX_SHIPPED_BYTES >> 20} MB a shipped model may take")
    return size
