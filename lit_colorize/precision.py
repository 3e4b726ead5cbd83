"""bf16 mixed precision where the hardware computes in bf16 natively, fp32 elsewhere.

Why: bf16 halves memory traffic and runs matrix units at full rate on GPUs from Ampere on
and on CPUs with AVX512-BF16 or AMX; on other CPUs oneDNN emulates it, which is slower than
fp32 on CPUs without BF16 (``benchmarks/throughput.py`` measures it). The CLI applies :func:`default_precision` when ``trainer.precision`` is not
given; an explicit ``--trainer.precision`` always wins.
"""

from __future__ import annotations

from pathlib import Path

import torch

#: CPU feature flags (as in /proc/cpuinfo) of instructions that compute in bf16.
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The feature flags of the first CPU listed; empty where there is no /proc/cpuinfo."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    return bool(cpu_flags(cpuinfo) & NATIVE_BF16_CPU_FLAGS)


def resolve_accelerator(accelerator: str | None) -> str:
    """Lightning's accelerator name -> "cuda", "mps" or "cpu" (what "auto" would pick)."""
    name = (accelerator or "auto") if isinstance(accelerator, str) else "auto"
    if name in ("gpu", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    return name


def native_bf16(accelerator: str | None) -> bool:
    """Whether the device Lightning will train on computes bf16 natively."""
    device = resolve_accelerator(accelerator)
    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device == "cpu":
        return cpu_has_native_bf16()
    return False


def default_precision(accelerator: str | None) -> str:
    """"bf16-mixed" where bf16 is native on the training device, else "32-true"."""
    return "bf16-mixed" if native_bf16(accelerator) else "32-true"
