"""Models side by side per category of a photo list, at predict's defaults, next to gray: the
model card's per-category table and issue 28's targets.

Why: a general model must be at least as good as gray on people, streets, objects and nature
alike; an overall mean can hide a category it makes worse. Each model is evaluated by
``lit_colorize.evaluation.evaluate`` (predict's path: each photo at its own size, the model's
own working size and decoding, guided upsampling) on the same photos of each category. Rebalanced
AuC weighs pixels by one color prior for every model (the first model's, or ``--prior_from``'s),
so models trained on different photos are read on one scale. The category of a photo is the
second part of its path in the corpus (``source/category/file``), or ``--category-part``.

    python -m benchmarks.per_category --files_from docs/data/heldout.txt --root ~/data/corpus \
        --models general_v2.ckpt landscape64_v1.ckpt
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.common import checkpoint_path, machine_line
from lit_colorize.colorizer import module_from_checkpoint
from lit_colorize.evaluation import GRAY, Setting, evaluate
from datamodules.folders import read_file_list

ALL = "all"
#: The categories issue 28's targets name; others (BSDS500's "mixed") are shown, not judged.
JUDGED = ("people", "street", "objects", "nature")
METRICS = (("auc", "AuC", 4), ("auc_rebalanced", "AuC rebal", 4), ("psnr_median", "PSNR med", 2))


def by_category(entries: list[str], root: Path, part: int) -> dict[str, list[Path]]:
    """Category -> photos (in list order); every photo also under :data:`ALL`."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for entry in entries:
        pieces = Path(entry).parts
        if len(pieces) <= part:
            sys.exit(f"{entry}: no path part {part} to take its category from; pass --category-part")
        groups[pieces[part]].append(root / entry)
        groups[ALL].append(root / entry)
    return dict(sorted(groups.items(), key=lambda item: (item[0] == ALL, item[0])))


def own_setting(module) -> Setting:
    """The model's own recommended decoding: what predict uses by default."""
    own = module.net.decodings_for(None)[0]
    return Setting(own.name, own.temperature)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files_from", required=True, help="photo list, paths relative to --root")
    parser.add_argument("--root", default="~/data/corpus")
    parser.add_argument("--models", nargs="+", required=True, help="checkpoint paths or shipped file names")
    parser.add_argument("--prior_from", default=None, help="checkpoint whose color prior rebalanced AuC uses (default: the first model's)")
    parser.add_argument("--category-part", type=int, default=1, help="which path part names the category")
    parser.add_argument("--every", type=int, default=1, help="take every n-th photo of each category")
    parser.add_argument("--out", default=None, help="also write the printed report to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    root = Path(args.root).expanduser()
    groups = by_category(read_file_list(args.files_from), root, args.category_part)
    groups = {name: photos[:: args.every] for name, photos in groups.items()}
    groups[ALL] = [photo for name, photos in groups.items() if name != ALL for photo in photos]
    models = {Path(name).name: module_from_checkpoint(checkpoint_path(name, '--models')) for name in args.models}
    prior_name = args.prior_from or args.models[0]
    prior = module_from_checkpoint(checkpoint_path(prior_name, '--prior_from')).net.color_table.counts
    lines: list[str] = []

    def log(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    log("lit-colorize per-category evaluation")
    log(machine_line())
    log(f"photos: {args.files_from} under {root}, every {args.every}; rebalanced AuC with the color prior of {Path(prior_name).name}")
    header = "| category | photos | row | " + " | ".join(title for _, title, _ in METRICS) + " |"
    table = [header, "|---|---:|---|" + "---:|" * len(METRICS)]
    gaps: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for category, photos in groups.items():
        gray_row: dict[str, float] | None = None
        for name, module in models.items():
            setting = own_setting(module)
            start = time.perf_counter()
            evaluation = evaluate(module, photos, [setting], prior=prior, log=lambda message: None)
            seconds = time.perf_counter() - start
            if gray_row is None:
                gray_row = evaluation.rows[GRAY]
                table.append(f"| {category} | {len(evaluation.photos)} | gray | " + " | ".join(f"{gray_row[k]:.{d}f}" for k, _, d in METRICS) + " |")
            row = evaluation.rows[setting.name]
            gaps[category][name] = {key: row[key] - gray_row[key] for key, _, _ in METRICS}
            cells = " | ".join(f"{row[k]:.{d}f}" for k, _, d in METRICS)
            table.append(f"| {category} | {len(evaluation.photos)} | {name} ({setting.name}, {module.net.predict_short_side} px) | {cells} |")
            log(f"{category}: {name} evaluated on {len(evaluation.photos)} photos in {seconds:.0f} s")
    log()
    log("\n".join(table))
    log()
    for name in models:
        categories = [c for c in groups if c in JUDGED] or [c for c in groups if c != ALL]
        at_least_gray = all(gaps[c][name]["auc"] >= 0 and gaps[c][name]["psnr_median"] >= 0 for c in categories)
        rebalanced = gaps[ALL][name]["auc_rebalanced"]
        worst = min(categories, key=lambda c: min(gaps[c][name]["auc"], gaps[c][name]["psnr_median"] / 100))
        log(
            f"{name}: AuC and median PSNR >= gray in every category: {'yes' if at_least_gray else 'no'} "
            f"(worst: {worst}, AuC {gaps[worst][name]['auc']:+.4f}, PSNR {gaps[worst][name]['psnr_median']:+.2f} dB); "
            f"rebalanced AuC over all {rebalanced:+.4f} against gray (target +0.08): {'met' if rebalanced >= 0.08 else 'not met'}"
        )
    log(f"mean AuC gap over {', '.join(JUDGED)}: " + ", ".join(
        f"{name} {np.mean([gaps[c][name]['auc'] for c in groups if c in JUDGED]):+.4f}" for name in models))  # fmt: skip
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
