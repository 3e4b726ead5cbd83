"""How close a bounded sample comes to a pass over the whole set, for the bin color table and the
rebalancing prior that StreamingShards builds from its first ``color_sample`` photos (issue 29).

Why: at ImageNet scale a full pass before the first step reads every chunk on every node; the
set is stored in a seeded random order, so its first N photos are a uniform sample. This writes
a shard set from real photos, reads every training photo once as training crops it (epoch 1's
crops, so prefix and whole see the same pixels), and prints, for prefixes of growing size, the
Jensen-Shannon divergence (natural log, nats) of the bins' distribution and of the smoothed
rebalancing prior to those of the whole set, the bins each occupies, and the largest relative
difference of a rebalancing weight, side by side in one run.

    python -m benchmarks.color_sample                      # ../shared/data/landscape, 128 px
    python -m benchmarks.color_sample --images 2000 --size 64
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from benchmarks.common import SHARED_DATA, machine_line, timed
from datamodules.landscape import find_images
from datamodules.streaming import COLOR_SAMPLE, StreamingShards, collate_photos
from lit_colorize.bins import ColorHistogram
from lit_colorize.color import rgb_to_lab
from lit_colorize.losses import rebalancing_weights
from lit_colorize.shards import write_shards


def js_divergence(p: Tensor, q: Tensor) -> float:
    """Jensen-Shannon divergence in nats of two distributions over the same bins."""
    p, q = p.double() / p.sum(), q.double() / q.sum()
    m = (p + q) / 2

    def kl(a: Tensor) -> float:
        kept = a > 0
        return float((a[kept] * (a[kept] / m[kept]).log()).sum())

    return (kl(p) + kl(q)) / 2


def smoothed_prior(counts: Tensor, grid_size: int, sigma: float = 5.0) -> Tensor:
    """The bins' distribution smoothed as :func:`rebalancing_weights` smooths it (its p~)."""
    from lit_colorize.bins import bin_centers

    centers = bin_centers(grid_size).double()
    kernel = torch.exp(-torch.cdist(centers, centers).pow(2) / (2 * sigma**2))
    prior = kernel @ (counts.double() / counts.sum())
    return prior / prior.sum()


def prefix_counts(datamodule: StreamingShards, sizes: list[int], grid_size: int, batch: int = 64) -> dict[int, Tensor]:
    """Per-bin pixel counts of the first N training photos for each N of ``sizes``, one pass."""
    histogram = ColorHistogram(grid_size)
    found: dict[int, Tensor] = {}
    total = max(sizes)
    for start in range(0, total, batch):
        images, _, _ = collate_photos([datamodule.train_set[i] for i in range(start, min(start + batch, total))])
        histogram.update(rgb_to_lab(images)[:, 1:])
        for size in sizes:
            if start < size <= start + batch:
                found[size] = histogram.counts.clone()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(SHARED_DATA / "landscape"))
    parser.add_argument("--images", type=int, default=0, help="photos to use (0: all)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--grid-size", type=int, default=18)
    args = parser.parse_args()
    root = Path(args.root)
    if not root.is_dir():
        sys.exit(f"photo folder {root} not found: pass --root")
    paths = [p for p, _ in find_images(root)]
    if args.images:
        paths = [paths[i] for i in sorted(np.random.default_rng(0).permutation(len(paths))[: args.images])]
    print("lit-colorize color table from a bounded sample of the stream (StreamingShards color_sample)")
    print(machine_line(torch.device("cpu")))
    with tempfile.TemporaryDirectory() as work:
        listing = Path(work) / "files.txt"
        listing.write_text("".join(f"{p.resolve()}\n" for p in paths))
        build, _ = timed(lambda: write_shards([listing], Path(work) / "shards", short_side=2 * args.size,
                                              val_fraction=0.01, gray_threshold=None, chunk_bytes="8MB"))  # fmt: skip
        datamodule = StreamingShards(str(Path(work) / "shards"), image_size=args.size, num_workers=0, color_sample=None)
        datamodule.setup("fit")
        whole = datamodule.color_sample  # with None asked: the whole training set
        sizes = sorted({n for n in (250, 500, 1000, 2000, 4000, whole // 4, whole // 2) if n < whole} | {whole})
        seconds, counts = timed(lambda: prefix_counts(datamodule, sizes, args.grid_size))
    print(f"settings: {whole} training photos of {root} (shards built in {build:.0f} s), training crops at "
          f"{args.size} px, grid {args.grid_size} ({args.grid_size ** 2} bins); one pass in {seconds:.0f} s; "
          f"StreamingShards' default color_sample: {COLOR_SAMPLE:,} photos")  # fmt: skip
    reference = counts[whole]
    prior, weights = smoothed_prior(reference, args.grid_size), rebalancing_weights(reference, args.grid_size)
    occupied = reference > 0
    print(f"{'first N photos':>15}{'of the set':>12}{'JS bins (nats)':>16}{'JS prior (nats)':>17}"
          f"{'bins occupied':>15}{'max weight diff':>17}")  # fmt: skip
    for size in sizes:
        sample = counts[size]
        weight = rebalancing_weights(sample, args.grid_size)
        difference = float(((weight - weights).abs() / weights)[occupied].max())
        print(f"{size:>15,}{size / whole:>12.1%}{js_divergence(sample, reference):>16.5f}"
              f"{js_divergence(smoothed_prior(sample, args.grid_size), prior):>17.6f}"
              f"{int((sample > 0).sum()):>8}/{int(occupied.sum()):<6}{difference:>17.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
