"""The one-warp batch augmentation against the kornia chain it replaced: speed, and what it trains.

Why: the datamodules' training augmentation (``lit_colorize.augment.RandomCropRotateFlip``)
replaced a chain of kornia augmentations (rotation, resized crop, flips) to keep the data side
of a training step small. This prints, side by side in one run:

* speed: milliseconds per batch of both, at each datamodule's setting (CIFAR100Subset's crop +
  flip at 32x32, Landscape's rotation + crop + flips at 128x128), timed in interleaved rounds;
* with ``--train``: the same model (324 bins + rebalancing, ``benchmarks.quality``'s budget)
  trained on the Landscape photos with each augmentation, same seed, evaluated on the same
  held-out photos by quality.py's evaluator.

    python -m benchmarks.augmentation                 # speed (under a minute)
    python -m benchmarks.augmentation --train         # + training with each (about 25 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from functools import partial
from pathlib import Path

import kornia.augmentation as K
import torch
from torch import nn

from benchmarks.common import SHARED_DATA, interleaved_seconds, machine_line, training_augmentation


def kornia_chain(size: int) -> nn.Module:
    """What the datamodules used before: kornia, one augmentation after another."""
    if size == 32:  # CIFAR100Subset: crop_scale (0.7, 1.0), flip_p 0.5
        return nn.Sequential(K.RandomResizedCrop((32, 32), scale=(0.7, 1.0), p=1.0), K.RandomHorizontalFlip(p=0.5))
    return nn.Sequential(  # Landscape
        K.RandomRotation(degrees=30.0, p=1.0),
        K.RandomResizedCrop((size, size), scale=(0.7, 1.0), ratio=(0.9, 1.1), p=1.0),
        K.RandomHorizontalFlip(p=0.5),
        K.RandomVerticalFlip(p=0.5),
    )


def milliseconds(augmentations: dict[str, nn.Module], images: torch.Tensor, rounds: int, calls: int) -> dict[str, float]:
    """Mean ms per call of each, after a warm-up call, in ``rounds`` interleaved rounds of ``calls`` calls."""
    work = {name: (partial(augment, images), rounds * calls) for name, augment in augmentations.items()}
    spent = interleaved_seconds(work, rounds)
    return {name: 1000 * seconds / (rounds * calls) for name, seconds in spent.items()}


def speed(sizes: list[int], batch_size: int, rounds: int, calls: int) -> list[str]:
    lines = [
        f"speed, ms per batch of {batch_size} (float RGB on the CPU; {rounds} interleaved rounds of {calls} calls)",
        f"{'size':<9}{'setting':<34}{'kornia chain':>13}{'one warp':>10}{'ratio':>8}",
    ]
    for size in sizes:
        images = torch.rand(batch_size, 3, size, size, generator=torch.Generator().manual_seed(0))
        ms = milliseconds({"kornia": kornia_chain(size), "warp": training_augmentation(size)}, images, rounds, calls)
        setting = "CIFAR100Subset: crop + flip" if size == 32 else "Landscape: rotation, crop, flips"
        lines.append(f"{f'{size}x{size}':<9}{setting:<34}{ms['kornia']:>13.2f}{ms['warp']:>10.2f}{ms['kornia'] / ms['warp']:>7.1f}x")
    return lines


def train_both(args: argparse.Namespace) -> list[str]:
    from benchmarks.quality import EVAL_GRID, VARIANTS, landscape_and_prior, train_and_evaluate  # noqa: PLC0415
    from lit_colorize import ColorizationModule  # noqa: PLC0415

    variant = "324 + rebalancing"
    with tempfile.TemporaryDirectory() as cache:
        datamodule, prior = landscape_and_prior(args, Path(args.root), cache)
        evaluation = ColorizationModule(grid_size=EVAL_GRID)
        rows, minutes = {}, {}
        for name, augmentation in (("kornia chain", kornia_chain(args.size)), ("one warp", training_augmentation(args.size))):
            datamodule.train_augmentation = augmentation
            _, rows[name], minutes[name] = train_and_evaluate(VARIANTS[variant], args, datamodule, prior, evaluation)
            print(f"  trained with the {name} in {minutes[name]:.1f} min", file=sys.stderr, flush=True)
        columns = ["AuC", "AuC rebal", "PSNR", "SSIM", "CF", "dCF", "acc"]
        lines = [
            f"training with each: {variant}, Landscape {args.size}x{args.size}, {len(datamodule.train_set)} training / "
            f"{len(datamodule.val_set)} held-out photos, U-Net {args.widths}, {args.epochs} epochs, seed {args.seed} "
            f"(evaluated as in benchmarks/quality.py)",
            f"{'augmentation':<15}" + "".join(f"{c:>11}" for c in columns) + f"{'minutes':>9}",
        ]
        for name, row in rows.items():
            lines.append(f"{name:<15}" + "".join(f"{row[c]:>11.4f}" for c in columns) + f"{minutes[name]:>9.1f}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--train", action="store_true", help="also train the same model with each augmentation")
    parser.add_argument("--root", default=str(SHARED_DATA / "landscape"))
    parser.add_argument("--size", type=int, default=64, help="training image size (quality.py's)")
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.train and not Path(args.root).is_dir():
        sys.exit(f"photo folder {args.root} not found: pass --root")
    lines = ["lit-colorize augmentation: one warp against the kornia chain", machine_line(torch.device("cpu")), ""]
    lines += speed(args.sizes, args.batch_size, args.rounds, args.calls)
    print("\n".join(lines), flush=True)
    if args.train:
        print("\n" + "\n".join(train_both(args)), flush=True)


if __name__ == "__main__":
    main()
