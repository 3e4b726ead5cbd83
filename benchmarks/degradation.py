"""Old-photo robustness: a model trained with the degradation of its L input against one trained
without, each evaluated on clean and on degraded held-out photos.

Why: issue 27 §4. A real old photo has grain, blur, JPEG blocks, faded contrast, a tone and
scratches (``lit_colorize.degrade``); a model that only ever saw clean L may fall apart on them.
Both models here train from the same seed on the same data (the shipped recipe at 64 px: U-Net
16-32-64-128 with global context, output stride 4, 324 bins, rebalancing, soft targets, one-cycle
lr 3e-3, batch 32) for the same number of steps, one thread each; only ``degrade_input`` differs
(so the two runs' random draws part after the first batch). Each is then evaluated by
``lit_colorize.evaluation`` (predict's path) on the same held-out photos, clean and with
``--degrade SEED`` (the network's input degraded, the same draw per photo for both models), under
the shipped model's recommended decoding (annealed mean T=0.38), next to gray.

Target (issue 27): with the augmentation, the degraded-input AuC-rebal loses at most a third of
what the model without it loses, and its clean-input AuC is at most 0.005 below the other's.

    python -m benchmarks.degradation                  # ~12 min of training per model (both at once, 2 cores)
    python -m benchmarks.degradation --quick          # checks the script in a minute, measures nothing
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks import recipe
from benchmarks.common import SHARED_DATA, machine_line
from datamodules import Landscape
from lit_colorize import ColorizationModule
from lit_colorize.colorizer import module_from_checkpoint
from lit_colorize.evaluation import GRAY, Evaluation, Setting, evaluate

RECIPE: dict[str, Any] = {
    "grid_size": 18, "widths": [16, 32, 64, 128], "global_context": True, "output_stride": 4, "lr": 3e-3,
    "lr_schedule": "onecycle", "class_rebalancing": True, "soft_targets": 5,
}  # fmt: skip
SETTING = Setting("annealed_mean", 0.38)
MODELS = {"without": False, "with degradation": True}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landscape", default=str(SHARED_DATA / "landscape"))
    parser.add_argument("--minutes", type=float, default=12.0, help="training budget per model: sets the steps")
    parser.add_argument("--steps", type=int, default=None, help="steps per model (default: from --minutes)")
    parser.add_argument("--photos", type=int, default=200, help="held-out photos evaluated (spread over the split)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (both models) and the split's")
    parser.add_argument("--degrade-seed", type=int, default=0, help="the evaluation's degradation seed")
    parser.add_argument("--sequential", action="store_true", help="train one model after the other (default: both at once)")
    parser.add_argument("--cache-dir", default=".cache/lit-colorize")
    parser.add_argument("--out", default=None, help="also write the printed report to this file")
    parser.add_argument("--quick", action="store_true", help="a tiny budget: checks the script, measures nothing")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.photos = 3, 4
    return args


def datamodule_for(args: argparse.Namespace) -> Landscape:
    datamodule = Landscape(roots=[args.landscape], image_size=64, batch_size=32, seed=args.seed, cache_dir=args.cache_dir)
    datamodule.setup("fit")
    return datamodule


def train(args: argparse.Namespace, degrade: bool, steps: int, checkpoint: Path) -> float:
    """Train one model on one thread as ``benchmarks.recipe`` trains (seeded, ``steps`` steps,
    the bin table built first) and save it to ``checkpoint``; returns the wall seconds."""
    torch.set_num_threads(1)
    module, seconds = recipe.train({**RECIPE, "degrade_input": degrade}, datamodule_for(args), steps, args.seed)
    module.trainer.save_checkpoint(checkpoint)
    return seconds


def _train_into(queue: Any, args: argparse.Namespace, degrade: bool, steps: int, checkpoint: Path) -> None:
    queue.put((degrade, train(args, degrade, steps, checkpoint)))


def train_both(args: argparse.Namespace, steps: int, scratch: Path) -> dict[bool, float]:
    """Both models' wall seconds, trained one after the other or in two processes at once."""
    if args.sequential:
        return {degrade: train(args, degrade, steps, scratch / f"{degrade}.ckpt") for degrade in MODELS.values()}
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_train_into, args=(queue, args, d, steps, scratch / f"{d}.ckpt")) for d in MODELS.values()]
    for worker in workers:
        worker.start()
    seconds = dict(queue.get() for _ in workers)
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            sys.exit(f"a training process failed with exit code {worker.exitcode}")
    return seconds


def held_out_photos(datamodule: Landscape, count: int) -> list[Path]:
    """``count`` photos spread evenly over the seeded held-out split (every category)."""
    paths = datamodule.val_paths()
    step = max(1, len(paths) // count)
    return paths[::step][:count]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not Path(args.landscape).is_dir():
        sys.exit(f"photo folder {args.landscape} not found: pass --landscape")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    lines: list[str] = []

    def log(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    log("lit-colorize old-photo degradation: trained with and without, evaluated clean and degraded" + (" (--quick)" if args.quick else ""))
    log(machine_line() + "; one thread per model" + ("" if args.sequential else ", both models trained at once"))
    datamodule = datamodule_for(args)
    cost = recipe.seconds_per_step(ColorizationModule(**RECIPE, degrade_input=True), datamodule, augmented=True)
    plain_cost = recipe.seconds_per_step(ColorizationModule(**RECIPE), datamodule, augmented=True)
    steps = args.steps or max(1, round(args.minutes * 60 / cost))
    log(
        f"a step: {plain_cost * 1000:.0f} ms without, {cost * 1000:.0f} ms with the degradation (one thread, alone); "
        f"{steps} steps each ({len(datamodule.train_set)} training photos, batch 32: {steps * 32 / len(datamodule.train_set):.1f} epochs)"
    )
    photos = held_out_photos(datamodule, args.photos)
    results: dict[tuple[str, str], Evaluation] = {}
    with tempfile.TemporaryDirectory() as scratch:
        seconds = train_both(args, steps, Path(scratch))
        for name, degrade in MODELS.items():
            module = module_from_checkpoint(Path(scratch) / f"{degrade}.ckpt")
            for condition, seed in (("clean", None), ("degraded", args.degrade_seed)):
                results[name, condition] = evaluate(
                    module, photos, [SETTING], skip_dir=scratch, log=lambda message: None, degrade_seed=seed
                )
    log(
        f"evaluated: {len(photos)} held-out Landscape photos (seeded split, seed {args.seed}) at their own size, the "
        f"network at 64 px; {SETTING.name}; degraded: lit-colorize evaluate --degrade {args.degrade_seed}"
    )
    log()
    log("| model | steps | train min | input | AuC | AuC rebal | gray AuC | gray AuC rebal |")
    log("|---|---:|---:|---|---:|---:|---:|---:|")
    for name, degrade in MODELS.items():
        for condition in ("clean", "degraded"):
            rows = results[name, condition].rows
            ours, gray = rows[SETTING.name], rows[GRAY]
            log(
                f"| {name} | {steps} | {seconds[degrade] / 60:.1f} | {condition} | {ours['auc']:.4f} | "
                f"{ours['auc_rebalanced']:.4f} | {gray['auc']:.4f} | {gray['auc_rebalanced']:.4f} |"
            )
    log()

    def rebal(name: str, condition: str) -> float:
        return results[name, condition].rows[SETTING.name]["auc_rebalanced"]

    loss_without = rebal("without", "clean") - rebal("without", "degraded")
    loss_with = rebal("with degradation", "clean") - rebal("with degradation", "degraded")
    clean_drop = results["without", "clean"].rows[SETTING.name]["auc"] - results["with degradation", "clean"].rows[SETTING.name]["auc"]
    log(f"AuC-rebal lost to degraded input: {loss_without:.4f} without the augmentation, {loss_with:.4f} with it")
    robust = loss_with <= loss_without / 3
    log(f"target 1, with it loses at most a third of what without loses ({loss_without / 3:.4f}): {'MET' if robust else 'NOT MET'}")
    log(f"target 2, clean-input AuC drops by at most 0.005: drop {clean_drop:.4f}: {'MET' if clean_drop <= 0.005 else 'NOT MET'}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
