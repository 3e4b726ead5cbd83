"""Colorization quality of the loss variants, same budget and seed, on held-out real photos.

Why: the thesis judged its results by eye. This trains each variant of the literature on the
Landscape photos with the same data, model, schedule, epochs and seed, then evaluates all of
them on the same held-out split with one evaluator (the metrics of ``lit_colorize.metrics``
and torchmetrics, at T=0.8 for classification), next to two reference rows: a gray
prediction (ab = 0) and the ground truth. It prints one table and writes a grid of the same
validation photos colorized by every variant.

    python -m benchmarks.quality                       # the full comparison (see --help for the budget)
    python -m benchmarks.quality --quick               # a smoke run in about a minute

Variants: regression (MSE); classification as in the thesis with 36 and 324 bins;
324 bins + class rebalancing; 324 bins + rebalancing + soft-encoded targets (k=5).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from benchmarks.common import SHARED_DATA, machine_line, timed
from callbacks import ColorTableBuilder
from datamodules import Landscape
from lit_colorize import ColorHistogram, ColorizationModule
from lit_colorize.bins import ab_to_bin
from lit_colorize.color import gray_rgb, join_lab, rgb_to_lab, upsample_ab
from lit_colorize.metrics import ABErrorAUC, Colorfulness, DeltaColorfulness
from lit_colorize.batches import images_of

EVAL_GRID = 18  # bins of the evaluation (accuracy, rebalanced AuC) for every row
TEMPERATURE = 0.8

VARIANTS: dict[str, dict[str, Any]] = {
    "regression (MSE)": {"head": "regression"},
    "classification, 36 bins": {"grid_size": 6},
    "classification, 324 bins": {"grid_size": 18},
    "324 + rebalancing": {"grid_size": 18, "class_rebalancing": True},
    "324 + rebalancing + soft": {"grid_size": 18, "class_rebalancing": True, "soft_targets": 5},
}


@dataclass
class Budget:
    size: int
    max_images: int | None
    epochs: int
    batch_size: int
    widths: tuple[int, ...]
    lr: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(SHARED_DATA / "landscape"))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--max-images", type=int, default=None, help="photos used in all (default: every photo)")
    parser.add_argument("--epochs", type=int, default=2, help="2: about 50 minutes of training for all five on a 2-core Xeon")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--lr", type=float, default=3e-3, help="peak of the one-cycle schedule")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid-photos", type=int, default=6)
    parser.add_argument("--out", default="docs/quality", help="folder for quality_table.txt and quality_grid.png")
    parser.add_argument("--cache-dir", default=None, help="Landscape cache (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="a tiny budget: checks the script, measures nothing")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.max_images, args.epochs, args.widths, args.grid_photos = 32, 160, 1, [8, 16], 3
    return args


class Evaluator:
    """One set of metrics for every row, on ab at the photo's size and RGB."""

    def __init__(self, prior: Tensor) -> None:
        auc_rebalanced = ABErrorAUC(rebalanced=True, grid_size=EVAL_GRID)
        auc_rebalanced.set_prior(prior)
        self.ab = MetricCollection({"AuC": ABErrorAUC(grid_size=EVAL_GRID), "AuC rebal": auc_rebalanced}, compute_groups=False)
        self.rgb = MetricCollection(
            {"PSNR": PeakSignalNoiseRatio(data_range=1.0), "SSIM": StructuralSimilarityIndexMeasure(data_range=1.0),
             "CF": Colorfulness(), "dCF": DeltaColorfulness()},
            compute_groups=False,
        )  # fmt: skip
        self.correct = {1: 0.0, 5: 0.0}
        self.pixels = 0
        self.has_top5 = True

    def update(self, batch: dict[str, Tensor], ab: Tensor, scores: Tensor | None) -> None:
        """``scores``: (B, 324, H, W) class scores on the evaluation grid, or None (bins of ab)."""
        truth = ab_to_bin(batch["ab"], EVAL_GRID)
        self.ab.update(ab, batch["ab"])
        self.rgb.update(join_lab(batch["l"], ab), batch["rgb"])
        if scores is None:
            self.has_top5 = False
            self.correct[1] += float((ab_to_bin(ab, EVAL_GRID) == truth).sum())
        else:
            top5 = scores.topk(5, dim=1).indices
            self.correct[1] += float((top5[:, 0] == truth).sum())
            self.correct[5] += float((top5 == truth[:, None]).any(dim=1).sum())
        self.pixels += truth.numel()

    def results(self) -> dict[str, float]:
        values = {name: float(v) for name, v in {**self.ab.compute(), **self.rgb.compute()}.items()}
        values["acc"] = self.correct[1] / self.pixels
        values["acc top5"] = self.correct[5] / self.pixels if self.has_top5 else float("nan")
        return values


def evaluate(loader, prepare, predict, prior: Tensor) -> dict[str, float]:
    """``predict(batch) -> (ab at full size, scores on the 324-bin grid or None)``."""
    evaluator = Evaluator(prior)
    for raw in loader:
        batch = prepare(images_of(raw))
        ab, scores = predict(batch)
        evaluator.update(batch, ab, scores)
    return evaluator.results()


def model_predictor(module: ColorizationModule):
    def predict(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        with torch.no_grad():
            output = module(batch["l"])
            ab = upsample_ab(module.net.decode(output, TEMPERATURE), batch["ab"].shape[-2:])
        scores = output if module.is_classifier and module.hparams.grid_size == EVAL_GRID else None
        return ab, scores

    return predict


def landscape_and_prior(args: argparse.Namespace, root: Path, cache_dir: str) -> tuple[Landscape, Tensor]:
    """The Landscape split every variant trains and is evaluated on, and the training photos'
    bin counts on the evaluation grid (the prior of the rebalanced AuC)."""
    datamodule = Landscape(
        roots=[str(root)], image_size=args.size, val_fraction=0.1, seed=args.seed, batch_size=args.batch_size,
        max_images=args.max_images, cache_dir=cache_dir,
    )  # fmt: skip
    datamodule.setup("fit")
    histogram = ColorHistogram(EVAL_GRID)
    for raw in datamodule.train_dataloader():
        histogram.update(rgb_to_lab(images_of(raw))[:, 1:])
    return datamodule, histogram.counts.float()


def train_and_evaluate(
    options: dict[str, Any], args: argparse.Namespace, datamodule: Landscape, prior: Tensor, evaluation: ColorizationModule
) -> tuple[ColorizationModule, dict[str, float], float]:
    """One variant with the shared budget and seed: the trained module, its metrics, minutes of training."""
    L.seed_everything(args.seed, workers=True)
    module = ColorizationModule(widths=args.widths, lr=args.lr, lr_schedule="onecycle", **options)
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=args.epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        callbacks=[ColorTableBuilder()], deterministic=False,
    )  # fmt: skip
    seconds, _ = timed(lambda: trainer.fit(module, datamodule))
    minutes = seconds / 60
    module.eval()
    return module, evaluate(datamodule.val_dataloader(), evaluation.prepare_batch, model_predictor(module), prior), minutes


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    root = Path(args.root)
    if not root.is_dir():
        sys.exit(f"photo folder {root} not found: pass --root")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def log(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    log("lit-colorize quality comparison" + (" (--quick: checks the script only)" if args.quick else ""))
    log(machine_line(torch.device("cpu")))
    cache = tempfile.TemporaryDirectory() if args.cache_dir is None else None
    datamodule, prior = landscape_and_prior(args, root, args.cache_dir or cache.name)
    evaluation = ColorizationModule(grid_size=EVAL_GRID)  # only its prepare_batch (Lab and bins)
    log(
        f"data: {len(datamodule.train_set)} training / {len(datamodule.val_set)} held-out photos from {root}, "
        f"{args.size}x{args.size}, near-gray training photos dropped, device augmentation"
    )
    log(
        f"budget per variant: U-Net {args.widths}, Adam one-cycle lr {args.lr}, batch {args.batch_size}, "
        f"{args.epochs} epochs, seed {args.seed}; evaluation at T={TEMPERATURE} (mode-mean), "
        f"accuracy and rebalanced AuC on the {EVAL_GRID}x{EVAL_GRID} grid"
    )

    rows: dict[str, dict[str, float]] = {}
    minutes: dict[str, float] = {}
    modules: dict[str, ColorizationModule] = {}
    for name, options in VARIANTS.items():
        modules[name], rows[name], minutes[name] = train_and_evaluate(options, args, datamodule, prior, evaluation)
        log(f"  trained {name} in {minutes[name]:.1f} min")

    rows = {
        "gray (ab = 0)": evaluate(datamodule.val_dataloader(), evaluation.prepare_batch,
                                  lambda b: (torch.zeros_like(b["ab"]), None), prior),  # fmt: skip
        **rows,
        "ground truth": evaluate(datamodule.val_dataloader(), evaluation.prepare_batch, lambda b: (b["ab"], None), prior),
    }
    columns = ["AuC", "AuC rebal", "PSNR", "SSIM", "CF", "dCF", "acc", "acc top5"]
    log()
    log(f"{'':<28}" + "".join(f"{c:>11}" for c in columns) + f"{'train min':>11}")
    for name, values in rows.items():
        cells = "".join(f"{values[c]:>11.4f}" if np.isfinite(values[c]) else f"{'-':>11}" for c in columns)
        log(f"{name:<28}{cells}{minutes.get(name, float('nan')):>11.1f}".replace("nan", "  -"))
    log(
        "AuC: area under the cumulative ab-error curve, thresholds 0-150 (Zhang et al. 2016); rebal.: pixels "
        "weighted by the inverse training prior of their bin; PSNR (dB) and SSIM on RGB; CF: colorfulness "
        "(Hasler and Suesstrunk 2003), dCF: mean |CF - CF(truth)|; acc: pixel bin accuracy (regression: bin of "
        "its ab; top5: classification on 324 bins only)."
    )
    write_grid(out / "quality_grid.png", datamodule, evaluation, modules, args.grid_photos)
    (out / "quality_table.txt").write_text("\n".join(lines) + "\n")
    log(f"wrote {out / 'quality_table.txt'} and {out / 'quality_grid.png'}")
    if cache is not None:
        cache.cleanup()


def write_grid(path: Path, datamodule, evaluation: ColorizationModule, modules: dict, count: int) -> None:
    """Rows: the first ``count`` held-out photos; columns: gray | truth | each variant."""
    images = images_of(next(iter(datamodule.val_dataloader())))[:count]
    batch = evaluation.prepare_batch(images)
    columns = [gray_rgb(batch["l"]), batch["rgb"]]
    for module in modules.values():
        with torch.no_grad():
            ab = upsample_ab(module.net.decode(module(batch["l"]), TEMPERATURE), batch["ab"].shape[-2:])
        columns.append(join_lab(batch["l"], ab))
    tiles = torch.stack(columns, dim=1)  # (N, C, 3, H, W)
    scale = max(1, 96 // tiles.shape[-1])
    tiles = tiles.repeat_interleave(scale, dim=-1).repeat_interleave(scale, dim=-2)
    n, c, _, h, w = tiles.shape
    grid = tiles.permute(0, 3, 1, 4, 2).reshape(n * h, c * w, 3)
    Image.fromarray((grid.clamp(0, 1) * 255).round().to(torch.uint8).numpy()).save(path)


if __name__ == "__main__":
    main()
