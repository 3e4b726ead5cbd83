"""Peak memory of ``lit-colorize predict`` and ``lit-colorize evaluate`` on photos of extreme shapes and sizes.

Why: a 30 KB PNG of 1x10000 pixels once took 5 GB and 70 s, because the network's input was
scaled to the working size by its short side alone (32 x 320,000). The network input is now
bounded by area too (``lit_colorize.fullres.working_size``: at most 4 x working_size**2
pixels), and full-resolution work runs in strips. This runs the real command on each photo,
each in a fresh process, and prints its peak resident memory (``ru_maxrss`` of that process,
from ``os.wait4``), its time and the network input it got:

    python -m benchmarks.predict_memory              # 64x64 (the fixed cost), 1x10000, 3x5000, 12000x12000
    python -m benchmarks.predict_memory --quick      # small shapes only, for the tests
    python -m benchmarks.predict_memory --commands evaluate   # the evaluate rows alone

Evaluate (issue 26: it once took 460 bytes a pixel, 21.6 GB for a 48-megapixel photo) is
measured on 64x64, the 1x10000 strip and a 6000x8000 photo (48 megapixels; target: under 3 GB),
with one setting (mode_mean T=0.8) beside gray: it measures an output a strip at a time, so
more settings take longer, not more memory.

The photos are made in a temporary folder: PNG strips of noise, and a smooth 12000x12000 JPEG
(144 megapixels; Pillow refuses photos above 179 megapixels as decompression bombs). The
model is the thesis's 128x128 U-Net (16-...-256, 324 bins) with random weights and a bin
table of bin centers, saved as a checkpoint: memory does not depend on the weights.
Photos are decoded in the main process (``--data.num_workers 0``), so one process holds all.

The photos and the checkpoint are made in processes of their own: Linux counts the memory of
the process that starts a command in the command's peak (``ru_maxrss`` carries the parent's
resident size over the fork and exec), so a parent that had held the 144-megapixel photo made
every later row read about 2 GB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.common import REPO_ROOT, machine_line

WORKING_SIZE = 128
SHAPES = {"64x64": (64, 64), "1x10000": (1, 10000), "3x5000": (3, 5000), "12000x12000": (12000, 12000)}  # height x width
QUICK_SHAPES = {"1x10000": (1, 10000), "3x5000": (3, 5000)}
EVALUATE_SHAPES = {"64x64": (64, 64), "1x10000": (1, 10000), "6000x8000": (6000, 8000)}
QUICK_EVALUATE_SHAPES = {"64x64": (64, 64), "1500x2000": (1500, 2000)}


def make_photo(folder: Path, name: str, height: int, width: int) -> Path:
    """Thin strips as PNG noise (a few KB to a few tens of KB); large photos as a smooth JPEG."""
    path = photo_path(folder, name, height, width)
    if path.suffix == ".png":
        pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        return path
    rows = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = rows
    image[..., 1] = cols
    image[..., 2] = 128
    with warnings.catch_warnings():  # made here on purpose: Pillow's warning is for files it reads
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        Image.fromarray(image).save(path, quality=90)
    return path


def make_checkpoint(path: Path) -> Path:
    """The thesis128 U-Net, random weights, bin table of bin centers, trained-size 128."""
    import logging

    import lightning as L

    from lit_colorize import PRESETS, ColorizationModule

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # the trainer's device banner

    torch.manual_seed(0)
    module = ColorizationModule(widths=PRESETS["thesis128"])
    module.color_table.built.fill_(True)
    module.net.train_image_size.fill_(WORKING_SIZE)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


def in_child(call: str) -> None:
    """Run ``call`` (Python, this module's names in scope) in a process of its own, so that what
    it allocates never counts in the peak of the commands measured after it."""
    code = f"from benchmarks.predict_memory import *; {call}"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def photo_path(folder: Path, name: str, height: int, width: int) -> Path:
    """Where :func:`make_photo` writes: PNG for thin strips, JPEG for large photos."""
    return folder / f"{name}.{'png' if height * width <= 1_000_000 else 'jpg'}"


def photo_made_apart(folder: Path, name: str, height: int, width: int) -> Path:
    """:func:`make_photo` run in a process of its own (see :func:`in_child`); the photo's path."""
    photo = photo_path(folder, f"photo_{name}", height, width)
    in_child(f"make_photo(Path({str(folder)!r}), {photo.stem!r}, {height}, {width})")
    return photo


def console_script() -> str:
    return shutil.which("lit-colorize", path=str(Path(sys.executable).parent)) or "lit-colorize"


def run_measured(command: list[str], what: str) -> tuple[float, float]:
    """``command`` in a fresh process: its peak RSS in MB and its seconds; RuntimeError if it fails."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "WANDB_MODE": "offline"}
    start = time.perf_counter()
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed ({process.returncode}):\n{output[-3000:]}")
    return usage.ru_maxrss / 1024, seconds  # Linux: KB


def measure(photo: Path, checkpoint: Path, out: Path) -> dict:
    """One ``lit-colorize predict`` of ``photo`` in a fresh process: its peak RSS and time."""
    command = [console_script(), "predict", "--config", str(REPO_ROOT / "configs" / "predict.yaml"),
               "--ckpt_path", str(checkpoint), "--data.inputs", f"[{photo}]", "--writer.output_dir", str(out),
               "--data.num_workers", "0", "--trainer.accelerator", "cpu"]  # fmt: skip
    peak_mb, seconds = run_measured(command, f"predict of {photo}")
    written = next(out.glob(f"{photo.stem}_colorized_*"))
    with Image.open(written) as image:
        size = image.size
    return {"peak_mb": peak_mb, "seconds": seconds, "output": f"{size[1]}x{size[0]}"}


def measure_evaluate(photo: Path, checkpoint: Path, out: Path) -> dict:
    """One ``lit-colorize evaluate`` of ``photo`` (gray and mode_mean T=0.8) in a fresh process."""
    command = [console_script(), "evaluate", "--ckpt_path", str(checkpoint), "--data.inputs", f"[{photo}]",
               "--out", str(out), "--temperatures", "[0.8]", "--decodings", "mode_mean", "--device", "cpu",
               "--overwrite"]  # fmt: skip
    peak_mb, seconds = run_measured(command, f"evaluate of {photo}")
    with Image.open(out / "grid.png") as grid:
        size = grid.size
    return {"peak_mb": peak_mb, "seconds": seconds, "grid": f"{size[1]}x{size[0]}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes only (a smoke run)")
    parser.add_argument("--commands", nargs="+", choices=("predict", "evaluate"), default=["predict", "evaluate"])
    args = parser.parse_args()
    print(machine_line(torch.device("cpu")))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        checkpoint = folder / "model.ckpt"
        in_child(f"make_checkpoint(Path({str(checkpoint)!r}))")
        if "predict" in args.commands:
            predict_rows(folder, checkpoint, QUICK_SHAPES if args.quick else SHAPES)
        if "evaluate" in args.commands:
            evaluate_rows(folder, checkpoint, QUICK_EVALUATE_SHAPES if args.quick else EVALUATE_SHAPES)


def predict_rows(folder: Path, checkpoint: Path, shapes: dict[str, tuple[int, int]]) -> None:
    from lit_colorize.fullres import MAX_WORKING_ASPECT, working_size
    from lit_colorize.unet import PRESETS, UNet

    multiple = UNet(1, 324, PRESETS["thesis128"]).size_multiple
    print("lit-colorize predict: peak resident memory per photo, CPU, each photo in a fresh process")
    print(
        f"model: thesis128 U-Net (16-...-256, 324 bins), random weights; working size {WORKING_SIZE} "
        f"(network input at most {MAX_WORKING_ASPECT:g} x {WORKING_SIZE}^2 = {int(MAX_WORKING_ASPECT * WORKING_SIZE**2):,} pixels); "
        "PNG output, T=0.8"
    )
    print(f"{'photo (h x w)':<16}{'file':>10}{'network input':>16}{'output':>14}{'peak RSS MB':>13}{'seconds':>9}")
    for name, (height, width) in shapes.items():
        photo = photo_made_apart(folder, name, height, width)
        h, w = working_size(height, width, WORKING_SIZE, multiple)
        result = measure(photo, checkpoint, folder / "out")
        print(
            f"{name:<16}{photo.stat().st_size / 1024:>8.0f}KB{f'{h}x{w}':>16}{result['output']:>14}"
            f"{result['peak_mb']:>13.0f}{result['seconds']:>9.1f}",
            flush=True,
        )
        photo.unlink()


def evaluate_rows(folder: Path, checkpoint: Path, shapes: dict[str, tuple[int, int]]) -> None:
    print("lit-colorize evaluate: peak resident memory per photo, CPU, each photo in a fresh process")
    print("the same model; rows gray and mode_mean T=0.8; metrics in strips of about half a megapixel")
    print(f"{'command':<9}{'photo (h x w)':<16}{'MP':>7}{'file':>10}{'grid.png':>12}{'peak RSS MB':>13}{'seconds':>9}")
    for name, (height, width) in shapes.items():
        photo = photo_made_apart(folder, name, height, width)
        result = measure_evaluate(photo, checkpoint, folder / "evaluation")
        print(
            f"{'evaluate':<9}{name:<16}{height * width / 1e6:>7.2f}{photo.stat().st_size / 1024:>8.0f}KB{result['grid']:>12}"
            f"{result['peak_mb']:>13.0f}{result['seconds']:>9.1f}",
            flush=True,
        )
        photo.unlink()


if __name__ == "__main__":
    main()
