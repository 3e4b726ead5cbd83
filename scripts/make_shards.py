"""Turn photo folders or file lists into LitData shard sets for StreamingShards:

    python scripts/make_shards.py --inputs photos/ more.txt --output /data/shards --short_side 256

writes ``/data/shards/train`` and ``/data/shards/val`` (JPEG bytes at most ``short_side`` on
the shorter side, near-gray and unreadable photos left out and listed), each with LitData's
``index.json`` and chunks. Copy the folder to an object store as it is
(``aws s3 sync /data/shards s3://bucket/shards``) and point ``data.init_args.shards`` at it.
"""

from __future__ import annotations

import argparse
import sys

from lit_colorize.errors import UserError
from lit_colorize.shards import write_shards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", nargs="+", required=True, help="photo folders and .txt file lists")
    parser.add_argument("--output", required=True, help="the shard set folder (train/ and val/ inside)")
    parser.add_argument("--short_side", type=int, default=256, help="photos are shrunk to at most this shorter side")
    parser.add_argument("--val_fraction", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gray_threshold", type=float, default=6.0, help="near-gray rule; a negative value keeps them")
    parser.add_argument("--chunk_bytes", default="64MB")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        report = write_shards(
            args.inputs, args.output, short_side=args.short_side, val_fraction=args.val_fraction, seed=args.seed,
            gray_threshold=None if args.gray_threshold < 0 else args.gray_threshold, chunk_bytes=args.chunk_bytes,
            overwrite=args.overwrite,
        )  # fmt: skip
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for path, reason in sorted(report.skipped.items()):
        print(f"skipped {path}: {reason}")
    print(f"wrote {args.output}: {report.written['train']} train and {report.written['val']} val photos, "
          f"{len(report.skipped)} skipped")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
