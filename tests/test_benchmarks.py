"""The throughput benchmark runs end to end (tiny sizes) and its checks agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # benchmark scripts run small


def test_throughput_quick_run() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", "--quick"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for line in ["(a) ours", "(d) core", "(e) bf16 autocast" if "32-true" in out else "(e) fp32", "data side",
                 "decode, images/s", "bin table build", "counts equal, max |mode diff| 0", "full pipeline / model only (a/b)",
                 "end-to-end vs the core fp32 default (a/d)", "decode vs thesis >= 100x", "table build vs thesis >= 20x"]:  # fmt: skip
        assert line in out, line
    assert "bins agree on 100.00% of pixels" in out


def test_loader_benchmark_small_run(shared_data: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.loader", "--root", str(shared_data / "landscape"),
         "--images", "64", "--epochs", "1", "--size", "32", "--large", "absent"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(a) cached (memmap)" in result.stdout and "ratio a/b" in result.stdout
    assert "64 landscape photos" in result.stdout  # the decoder comparison
    for row in ("PhotoFolders (decode every draw)", "shards, local disk", "shards, S3 on loopback (moto)", "S3 / local shards"):
        assert row in result.stdout, row  # issue 29's streaming rows


def test_quality_comparison_quick_run(shared_data: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.quality", "--quick", "--root", str(shared_data / "landscape"),
         "--out", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "quality_table.txt").read_text()
    for row in ["gray (ab = 0)", "regression (MSE)", "classification, 36 bins", "324 + rebalancing + soft", "ground truth"]:
        assert row in table, row
    truth = next(line for line in table.splitlines() if line.startswith("ground truth")).split()
    assert truth[2:4] == ["1.0000", "1.0000"]  # AuC and rebalanced AuC of the truth itself
    with Image.open(tmp_path / "quality_grid.png") as grid:
        assert grid.size == (7 * 96, 3 * 96)  # gray | truth | 5 variants, 3 photos, 32 px tiles shown at 96


def test_augmentation_benchmark_small_run(shared_data: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.augmentation", "--sizes", "32", "48", "--rounds", "1",
         "--calls", "1", "--train", "--root", str(shared_data / "landscape"), "--max-images", "48", "--size", "32",
         "--epochs", "1", "--widths", "8", "16"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "32x32    CIFAR100Subset: crop + flip" in out and "48x48    Landscape: rotation, crop, flips" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("kornia chain ", "one warp "))]
    assert len(rows) == 2 and all(0.0 < float(row[2]) <= 1.0 for row in rows)  # AuC of each trained model


def test_video_benchmark_small_run(shared_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("av", reason="video needs the video extra: pip install -e '.[video]'")
    strip = tmp_path / "strip.png"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.video", "--clips", "carphone_pristine.mp4", "--max-frames", "8",
         "--strip", str(strip)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for row in ("per-frame", "stabilised", "original"):
        assert f"carphone_pristine.mp4    {row}" in out and f"mean over clips          {row}" in out
    assert "peak RSS, stabilised, carphone_pristine.mp4 looped: 8 frames" in out and "80 frames (10x)" in out
    assert out.count("MET   ") + out.count("MISSED ") == 7
    assert not strip.exists()  # the strip's frames (120-124 of the pancake clip) were not in this run


def test_hints_benchmark_small_run(shared_data: Path, tmp_path: Path) -> None:
    """A briefly trained guided model on two BSDS500 test photos at full resolution: the tables,
    the locality rows, the verdicts (a target this tiny model misses exits 1, never a crash), the picture."""
    from tests.helpers import fitted_module

    _, _, trainer = fitted_module(tmp_path / "run", widths=(8, 16, 32), hints=True)
    checkpoint = tmp_path / "guided.ckpt"
    trainer.save_checkpoint(checkpoint)
    picture = tmp_path / "hints.png"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.hints", "--hint_ckpt", str(checkpoint), "--every", "100",
         "--working_sizes", "64", "--picture", str(picture)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr[-3000:]
    out = result.stdout
    assert "2 BSDS500 test photos (every 100th), full resolution" in out and "Zhang et al. 2017" in out
    assert out.count("no hints (same budget)") == 3 and "Locality:" in out and "N=1:" in out
    verdicts = out.count("\nMET    ") + out.count("\nNOT MET")
    assert verdicts == 6 and result.returncode == int("NOT MET" in out)  # 5 per model and size, and the suggestions
    with Image.open(picture) as image:  # automatic | 1 hint | moved | 3 hints | moved, one row for the one model
        assert image.size[0] > 4 * image.size[1]


def test_serve_load_test(shared_data: Path) -> None:
    """The issue's load test, in full: 50 colorizations over HTTP, 4 at a time, against the real command."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.serve_load", "--requests", "50", "--parallel", "4"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "50 of 50 colorizations" in out and "errors: 0" in out
    for kind in ("upload", "colorize", "suggest", "all three"):
        assert f"{kind:10s}    50   p50" in out
    assert out.count("MET     ") == 2


def test_gpu_check_script_cpu_path() -> None:
    """benchmarks/gpu_check.sh end to end on the CPU: GPU tests (skipped here) and the bf16 throughput run."""
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "benchmarks" / "gpu_check.sh"), "--cpu-smoke"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for line in ["== GPU-marked tests", "== throughput at 128x128", "precision of (a), (b), (f): bf16-mixed",
                 "data side share of a step", "(a) ours"]:  # fmt: skip
        assert line in out, line
    if not torch.cuda.is_available():
        assert "GPU: none (CPU smoke run)" in out and "skipped" in out


def test_gpu_check_refuses_to_run_without_a_gpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "benchmarks" / "gpu_check.sh")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    assert result.returncode == 1 and "no CUDA GPU" in result.stderr and "--cpu-smoke" in result.stderr


def test_working_size_benchmark_small_run(shared_data: Path, tmp_path: Path) -> None:
    """Issue 27's measurement of working size x upsampling: every row it prints comes from
    evaluate's path, gray once, and the timing is relative to bilinear at the smallest size."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.working_size", "--quick", "--inputs", str(shared_data / "photos" / "bsds500" / "val"),
         "--sizes", "64", "96", "--out", str(tmp_path / "report.txt")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "report.txt").read_text()
    assert report == result.stdout
    rows = [line for line in report.splitlines() if line.startswith("| ") and "photos)" in line]
    assert len(rows) == 1 + 2 * 4  # gray, then 2 decodings x 2 upsamplings per size
    assert sum("bilinear" in row for row in rows) == 4
    assert "| 64 | 1.00x |" in report  # the reference of the timing
