"""What the benchmark scripts share: the machine line, the training augmentation, the timing.

Why: every benchmark prints the machine it ran on and times things the same way (after a
warm-up, synchronized with the GPU, in interleaved rounds so a background load weighs on all
alike); one copy here keeps their numbers comparable. It stays light (torch and the standard
library; the datamodules only when asked for an augmentation) because the scripts that spawn
fresh processes to measure memory import it too.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The read-only photos beside the checkout (``../shared/data``): the scripts' default inputs.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
CPU = torch.device("cpu")


# --- machine ------------------------------------------------------------------------------
def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_line(device: torch.device = CPU) -> str:
    """One line that says what the numbers below it were measured on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    accelerator = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)
    # Other work on the machine slows everything; the load average at the start says how busy it was.
    load = f", load average {os.getloadavg()[0]:.2f} at start" if hasattr(os, "getloadavg") else ""
    return (
        f"machine: {cpu_name()}, {cores} cores available{load}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), device {accelerator}, python {platform.python_version()}"
    )


# --- data ---------------------------------------------------------------------------------
def training_augmentation(size: int) -> nn.Module:
    """The batch augmentation of the datamodule that trains at ``size``: CIFAR100Subset's
    (random resized crop + horizontal flip) at 32x32, Landscape's (rotation, crop, flips) else.
    Imported here, not at the top, so that scripts without training do not load the datamodules."""
    from datamodules.cifar import CIFAR100Subset  # noqa: PLC0415
    from datamodules.landscape import landscape_augmentation  # noqa: PLC0415

    return CIFAR100Subset().train_augmentation if size == 32 else landscape_augmentation(size)


# --- verdicts ------------------------------------------------------------------------------
def print_verdicts(verdicts: list[tuple[str, bool]]) -> int:
    """Prints each target as MET / NOT MET after a blank line; the exit status: 0 if all are met."""
    print()
    for text, met in verdicts:
        print(f"{'MET    ' if met else 'NOT MET'} {text}")
    return 0 if all(met for _, met in verdicts) else 1


# --- timing -------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    """Waits for the GPU's queued work, so a clock read after it counts that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], T], device: torch.device = CPU) -> tuple[float, T]:
    """Seconds ``fn()`` took, synchronized with ``device`` at both ends, and what it returned."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def interleaved_seconds(
    work: dict[str, tuple[Callable[[], object], int]], rounds: int, warmup: int = 1, device: torch.device = CPU
) -> dict[str, float]:
    """Seconds each piece of work spent on its timed calls, given as name -> (call, timed calls).

    Each first runs ``warmup`` untimed calls. The timed calls then run in at most ``rounds``
    rounds, every piece taking its share of each round, so a background load that comes and
    goes during the run weighs on all alike instead of on whichever ran then.
    """
    for call, _ in work.values():
        for _ in range(warmup):
            call()
    rounds = max(1, min([rounds, *(calls for _, calls in work.values())]))
    elapsed = dict.fromkeys(work, 0.0)
    for r in range(rounds):
        for name, (call, calls) in work.items():
            share = (r + 1) * calls // rounds - r * calls // rounds
            elapsed[name] += timed(lambda: repeat(call, share), device)[0]  # noqa: B023 (called at once)
    return elapsed


def repeat(call: Callable[[], object], times: int) -> None:
    """``call()`` ``times`` times, keeping none of its results (they could fill the memory)."""
    for _ in range(times):
        call()


def checkpoint_path(name: str, option: str = "--model") -> Path:
    """A checkpoint path, or the file name of a shipped model (its SHA-256 checked); else exit
    with one line naming ``option`` and what to give."""
    from lit_colorize.pretrained import pretrained_checkpoint, weights_folder

    path = Path(name).expanduser()
    if path.is_file():
        return path
    if (weights_folder() / name).is_file():
        return pretrained_checkpoint(name)
    raise SystemExit(f"{option} {name}: no such checkpoint (give a .ckpt path, or a shipped model's name in {weights_folder()})")
