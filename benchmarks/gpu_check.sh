#!/usr/bin/env bash
# One short GPU check, for a machine with one CUDA GPU (e.g. a borrowed H100 for 15 minutes):
#   1. the test suite's GPU-marked tests (pytest -m gpu);
#   2. benchmarks.throughput at 128x128, batch 64, bf16 mixed precision: images/s of every
#      pipeline, and the share of a step spent outside the model's forward/backward (data
#      side: loader, transfer, Lab, bins; optimizer), from a step synchronized between parts.
#
#   bash benchmarks/gpu_check.sh               # on the GPU (about 3-5 minutes)
#   bash benchmarks/gpu_check.sh --cpu-smoke   # the same path on the CPU, tiny: what the test suite runs
#
# PYTHON picks the interpreter (default: python). Exits non-zero when a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"

mode="gpu"
if [[ "${1:-}" == "--cpu-smoke" ]]; then
  mode="cpu-smoke"
elif [[ -n "${1:-}" ]]; then
  echo "usage: bash benchmarks/gpu_check.sh [--cpu-smoke]" >&2
  exit 2
fi

has_cuda=$("$PYTHON" -c 'import torch; print(int(torch.cuda.is_available()))')
if [[ "$mode" == "gpu" && "$has_cuda" != "1" ]]; then
  echo "gpu_check: no CUDA GPU visible to $PYTHON (torch.cuda.is_available() is False)." >&2
  echo "Run it on a machine with a GPU, or use --cpu-smoke to check the script's CPU path." >&2
  exit 1
fi

echo "== machine"
"$PYTHON" - <<'PY'
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA build {torch.version.cuda}")
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}, "
          f"bf16 native: {torch.cuda.is_bf16_supported(including_emulation=False)}")
else:
    print("GPU: none (CPU smoke run)")
PY

echo "== GPU-marked tests (pytest -m gpu)"
"$PYTHON" -m pytest -m gpu -q -rs -p no:cacheprovider tests

echo "== throughput at 128x128, batch 64, bf16"
if [[ "$mode" == "gpu" ]]; then
  "$PYTHON" -m benchmarks.throughput --device cuda --sizes 128 --batch-size 64 --precision bf16-mixed --compile-sizes \
    --steps 20 --ref-steps 3 --warmup 3
else
  "$PYTHON" -m benchmarks.throughput --quick --device cpu --sizes 128 --batch-size 4 --precision bf16-mixed
fi
