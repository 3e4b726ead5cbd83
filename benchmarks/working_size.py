"""The working size and the upsampling, measured on full-resolution photos: what predict's
defaults should be for a checkpoint.

    python -m benchmarks.working_size                               # the shipped model, BSDS500 test + the 8 large photos
    python -m benchmarks.working_size --sizes 64 128 --max-photos 20  # a quicker look
    python -m benchmarks.working_size --quick                       # a smoke run: checks the script, measures nothing

Why: the network was trained on 64 px crops and its global context is a mean over positions,
so showing it a photo larger than that may help (more detail per object) or hurt (objects
at scales it never saw). Nothing but measurement decides. Every row goes the way of
``lit-colorize evaluate`` (:func:`lit_colorize.evaluation.evaluate`, the pixels predict
writes), at working sizes 64 to 256, under predict's old default decoding (mode-mean T=0.8)
and the card's (annealed mean T=0.38), each with bilinear and guided upsampling, with gray
beside. Then a 12-megapixel photo is colorized under each working size and upsampling, side
by side in interleaved rounds, and the time is printed as a ratio to bilinear at the
smallest size (predict's old default): the guided pass should be cheap next to the network.

The photos are benchmark photos the model never trained on (BSDS500 test and the large
wallpapers), reported, never tuned on; ``--inputs`` takes other folders.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from benchmarks.common import SHARED_DATA, interleaved_seconds, machine_line
from lit_colorize.colorizer import module_from_checkpoint
from lit_colorize.evaluation import GRAY, Setting, cell, evaluate
from lit_colorize.fullres import UPSAMPLINGS
from lit_colorize.pretrained import pretrained_checkpoint

SIZES = (64, 96, 128, 192, 256)
DECODINGS = (("mode_mean", 0.8), ("annealed_mean", 0.38))
KEYS = (("auc", 4), ("auc_rebalanced", 4), ("psnr_median", 2))
MEGAPIXELS_12 = (3000, 4000)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt-path", default=None, help="default: the shipped model")
    parser.add_argument(
        "--inputs", nargs="+",
        default=[str(SHARED_DATA / "photos" / "bsds500" / "test"), str(SHARED_DATA / "photos" / "large")],
        help="folders of color photos, each measured on its own",
    )  # fmt: skip
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--max-photos", type=int, default=None, help="the first N photos of each folder")
    parser.add_argument("--timing-rounds", type=int, default=2, help="timed 12 MP colorizations per setting")
    parser.add_argument("--no-timing", action="store_true", help="quality only: no 12 MP timing")
    parser.add_argument("--out", default=None, help="also write the printed report to this file")
    parser.add_argument("--quick", action="store_true", help="2 photos, 2 sizes, a 1 MP timing photo")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.max_photos, args.timing_rounds = args.sizes[:2], 2, 1
    return args


def settings() -> list[Setting]:
    return [Setting(d, t, u) for d, t in DECODINGS for u in UPSAMPLINGS]


def measure_quality(module: torch.nn.Module, folder: str, sizes: list[int], max_photos: int | None, emit) -> None:
    emit(f"\n{folder}: every photo at its own resolution, through lit-colorize evaluate's path")
    emit("| working size | setting | AuC | AuC rebal | PSNR median |")
    emit("| ---: | --- | ---: | ---: | ---: |")
    for size in sizes:
        evaluation = evaluate(module, [folder], settings(), size, max_photos, log=lambda message: None)
        for name, values in evaluation.rows.items():
            if name == "truth" or (name == GRAY and size != sizes[0]):
                continue  # gray does not depend on the working size: one row
            label = "any" if name == GRAY else str(size)
            emit(f"| {label} | {name} | " + " | ".join(cell(values[key], d) for key, d in KEYS) + f" |  ({len(evaluation.photos)} photos)")


def measure_time(module: torch.nn.Module, sizes: list[int], rounds: int, quick: bool, emit) -> None:
    height, width = (750, 1000) if quick else MEGAPIXELS_12
    generator = torch.Generator().manual_seed(0)
    # A photo-like test card: smooth gradients and hard-edged blocks (the time does not depend on content).
    blocks = torch.randint(0, 256, (3, height // 100 + 1, width // 100 + 1), generator=generator, dtype=torch.uint8)
    rgb = blocks.repeat_interleave(100, 1).repeat_interleave(100, 2)[:, :height, :width].contiguous()
    net = module.net
    work = {
        (size, upsampling): (lambda s=size, u=upsampling: net.colorize_photo(rgb, [0.8], s, (), u), 1)
        for size in sizes
        for upsampling in UPSAMPLINGS
    }
    with torch.no_grad():
        seconds = interleaved_seconds({f"{s} {u}": call for (s, u), call in work.items()}, rounds=rounds, warmup=1)
    reference = seconds[f"{sizes[0]} bilinear"]
    emit(f"\ncolorize_photo of a {width}x{height} photo ({width * height / 1e6:.0f} MP), {rounds} interleaved round(s), "
         f"time relative to bilinear at working size {sizes[0]} (predict's old default)")  # fmt: skip
    emit("| working size | bilinear | guided | guided / bilinear |")
    emit("| ---: | ---: | ---: | ---: |")
    for size in sizes:
        bilinear, guided = seconds[f"{size} bilinear"], seconds[f"{size} guided"]
        emit(f"| {size} | {bilinear / reference:.2f}x | {guided / reference:.2f}x | {guided / bilinear:.2f} |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    lines: list[str] = []

    def emit(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    checkpoint = args.ckpt_path or pretrained_checkpoint()
    module = module_from_checkpoint(checkpoint)
    emit("lit-colorize working size x upsampling")
    emit(machine_line())
    emit(f"checkpoint: {checkpoint} (trained at {int(module.net.train_image_size)} px)")
    for folder in args.inputs:
        if not Path(folder).is_dir():
            print(f"{folder} not found: give --inputs folders of color photos", file=sys.stderr)
            return 1
        measure_quality(module, folder, args.sizes, args.max_photos, emit)
    if not args.no_timing:
        measure_time(module, args.sizes, args.timing_rounds, args.quick, emit)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
