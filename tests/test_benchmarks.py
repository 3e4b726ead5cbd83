"""The throughput benchmark runs end to end (tiny sizes) and its checks agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT


def test_throughput_quick_run() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "throughput.py"), "--quick"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for line in ["(a) ours", "decode, images/s", "bin table build", "counts equal, max |mode diff| 0"]:
        assert line in out, line
    assert "bins agree on 100.00% of pixels" in out


def test_loader_benchmark_small_run(shared_data: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "loader.py"), "--root", str(shared_data / "landscape"),
         "--images", "64", "--epochs", "1", "--size", "32", "--large", "absent"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(a) cached (memmap)" in result.stdout and "ratio a/b" in result.stdout
    assert "64 landscape photos" in result.stdout  # the decoder comparison
