"""The general model's recipe (issue 28), chosen by measurement: variants side by side at equal
CPU time, trained on the general corpus and scored per category.

Why a second search: the shipped v1 recipe was chosen on Landscape (benchmarks/recipe.py). On
a corpus of people, streets, objects and nature, crop size, width, output stride, rebalancing
strength, per-category sampling weights and the old-photo degradation may choose differently.
Every variant trains from the same seed on the corpus's training split (``docs/data/train.txt``)
minus a seeded tuning set of ``--tuning-per-category`` photos per category, for as many steps as
the reference variant's budget buys at its own measured cost per step (a bigger crop or a wider
net gets fewer steps). The tuning set is scored with ``lit_colorize.evaluation`` (predict's
path: the photo at its own size, the model's working size, guided upsampling), per category
and overall, next to gray. The corpus's held-out split and every benchmark's photos are never
looked at here: they are what the model card reports.

    python -m benchmarks.recipe_corpus --corpus ~/data/corpus            # every variant
    python -m benchmarks.recipe_corpus --variants base crop_96 --steps 300
    python -m benchmarks.recipe_corpus --quick                           # a smoke run
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import REPO_ROOT, machine_line
from benchmarks.recipe import seconds_per_step, train
from datamodules.folders import PhotoFolders, PhotoRoot, read_file_list
from lit_colorize.evaluation import GRAY, Setting, evaluate

CATEGORIES = ("people", "street", "objects", "nature")

#: What every variant shares: the shipped v1 recipe (configs/recipe.yaml) on the corpus.
BASE: dict[str, Any] = {
    "model": {
        "grid_size": 18, "widths": [16, 32, 64, 128], "global_context": True, "output_stride": 4,
        "lr": 3e-3, "lr_schedule": "onecycle", "class_rebalancing": True, "soft_targets": 5,
    },
    "data": {"image_size": 64, "batch_size": 32},
    "weights": "natural",
}  # fmt: skip

#: Each variant changes one thing of the base.
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "crop_96": {"data": {"image_size": 96}},
    "crop_128": {"data": {"image_size": 128}},
    "wider_24": {"model": {"widths": [24, 48, 96, 192]}},
    "deeper_5": {"model": {"widths": [16, 32, 64, 128, 256]}},
    "output_stride_2": {"model": {"output_stride": 2}},
    "rebalancing_0.25": {"model": {"rebalancing_mix": 0.25}},
    "categories_equal": {"weights": "categories_equal"},
    "degrade": {"model": {"degrade_input": True}},
}


def merged(variant: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": {**BASE["model"], **variant.get("model", {})},
        "data": {**BASE["data"], **variant.get("data", {})},
        "weights": variant.get("weights", BASE["weights"]),
    }


def category_of_entry(entry: str) -> str:
    """``source/category/name`` -> category (the corpus's layout, docs/data/CORPUS.md)."""
    return entry.split("/")[1]


def tuning_split(entries: list[str], per_category: int, seed: int) -> tuple[list[str], list[str]]:
    """(search training entries, tuning entries): ``per_category`` seeded photos of each of
    CATEGORIES, taken out of training."""
    by_category: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        by_category[category_of_entry(entry)].append(entry)
    rng = random.Random(seed)
    tuning: set[str] = set()
    for category in CATEGORIES:
        tuning.update(rng.sample(sorted(by_category[category]), min(per_category, len(by_category[category]))))
    return [e for e in entries if e not in tuning], sorted(tuning, key=lambda e: (category_of_entry(e), e))


def roots_for(corpus: Path, train_list: Path, tuning_list: Path, weights: str) -> list[PhotoRoot]:
    """One root per source and category (a ``prefix`` of the corpus folder). ``natural``: each
    root weighs its photo count (the corpus's own mix). ``categories_equal``: the four
    categories draw equally, each shared among its sources by count (BSDS500's mixed photos
    keep their natural share)."""
    counts = Counter("/".join(entry.split("/")[:2]) for entry in read_file_list(train_list))
    total = sum(counts.values())
    by_category = Counter()
    for prefix, count in counts.items():
        by_category[prefix.split("/")[1]] += count
    roots = []
    for prefix, count in sorted(counts.items()):
        category = prefix.split("/")[1]
        if weights == "natural" or category not in CATEGORIES:
            weight = count / total
        else:
            mixed_share = sum(c for p, c in counts.items() if p.split("/")[1] not in CATEGORIES) / total
            weight = (1 - mixed_share) / len(CATEGORIES) * count / by_category[category]
        roots.append(PhotoRoot(str(corpus), weight=round(weight, 6), files=str(train_list), held_out=str(tuning_list), prefix=prefix + "/"))
    return roots


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(REPO_ROOT.parent / "data" / "corpus"), help="the corpus folder (docs/data/CORPUS.md)")
    parser.add_argument("--train-list", default=str(REPO_ROOT / "docs" / "data" / "train.txt"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=1200, help="the reference variant's steps")
    parser.add_argument("--reference", default="base", choices=list(VARIANTS))
    parser.add_argument("--tuning-per-category", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=".cache/lit-colorize")
    parser.add_argument("--out", default=None, help="also write the printed report to this file")
    parser.add_argument("--quick", action="store_true", help="a tiny budget: checks the script, measures nothing")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.tuning_per_category, args.variants = 4, 3, args.variants[:2]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    corpus = Path(args.corpus).expanduser()
    if not (corpus / "manifest.csv").is_file():
        sys.exit(f"no corpus at {corpus} (manifest.csv missing): build it (docs/data/CORPUS.md) and pass --corpus")
    torch.manual_seed(args.seed)
    lines: list[str] = []

    def log(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    log("lit-colorize general recipe search" + (" (--quick: checks the script only)" if args.quick else ""))
    log(machine_line())
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        train_entries, tuning = tuning_split(read_file_list(args.train_list), args.tuning_per_category, args.seed)
        (scratch / "train.txt").write_text("\n".join(train_entries) + "\n")
        (scratch / "tuning.txt").write_text("\n".join(tuning) + "\n")
        log(f"training: {len(train_entries)} corpus photos; tuning: {len(tuning)} ({args.tuning_per_category} per category, seed {args.seed})")

        def datamodule_for(parts: dict[str, Any]) -> PhotoFolders:
            roots = roots_for(corpus, scratch / "train.txt", scratch / "tuning.txt", parts["weights"])
            datamodule = PhotoFolders(roots=roots, seed=args.seed, cache_dir=args.cache_dir, **parts["data"])
            datamodule.setup("fit")
            return datamodule

        reference = merged(VARIANTS[args.reference])
        from lit_colorize import ColorizationModule

        base_cost = seconds_per_step(ColorizationModule(**reference["model"]), datamodule_for(reference), augmented=True)
        log(f"reference {args.reference}: {base_cost * 1000:.0f} ms/step -> {args.steps} steps; every variant gets as much time")
        header = "| variant | steps | train min | category | gray AuC | AuC | gray AuC rebal | AuC rebal | gray PSNR med | PSNR med |"
        table = [header, "|" + "---|" * 10]
        tuning_by_category = {c: [corpus / e for e in tuning if category_of_entry(e) == c] for c in CATEGORIES}
        for name in args.variants:
            parts = merged(VARIANTS[name])
            datamodule = datamodule_for(parts)
            cost = seconds_per_step(ColorizationModule(**parts["model"]), datamodule, augmented=True)
            steps = max(1, round(args.steps * base_cost / cost))
            log(f"{name}: {parts}; {cost * 1000:.0f} ms/step ({cost / base_cost:.2f}x {args.reference}) -> {steps} steps")
            module, seconds = train(parts["model"], datamodule, steps, args.seed)
            setting = Setting("annealed_mean", 0.38)
            means: dict[str, list[float]] = defaultdict(list)
            for category, photos in tuning_by_category.items():
                evaluation = evaluate(module, photos, [setting], skip_dir=scratch, log=lambda message: None)
                gray, ours = evaluation.rows[GRAY], evaluation.rows[setting.name]
                values = [gray["auc"], ours["auc"], gray["auc_rebalanced"], ours["auc_rebalanced"], gray["psnr_median"], ours["psnr_median"]]
                for key, value in zip(("ga", "a", "gr", "r", "gp", "p"), values):
                    means[key].append(value)
                table.append(
                    f"| {name} | {steps} | {seconds / 60:.1f} | {category} | {values[0]:.4f} | {values[1]:.4f} | "
                    f"{values[2]:.4f} | {values[3]:.4f} | {values[4]:.2f} | {values[5]:.2f} |"
                )
            mean = {key: sum(v) / len(v) for key, v in means.items()}
            table.append(
                f"| {name} | {steps} | {seconds / 60:.1f} | **mean** | {mean['ga']:.4f} | {mean['a']:.4f} | "
                f"{mean['gr']:.4f} | {mean['r']:.4f} | {mean['gp']:.2f} | {mean['p']:.2f} |"
            )
            log("\n".join(table[-len(CATEGORIES) - 1 :]))
    log()
    log(
        "scored: annealed mean T=0.38 (v1's own decoding), each photo at its own size (at most 256 px), the network at its "
        "training size, guided upsampling; rebalanced AuC weighs bins by the model's own color table"
    )
    log("\n".join(table))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
