"""Make a trained checkpoint the shipped model: slim it, check it colorizes exactly as the
original, write it to ``lit_colorize/weights/`` (package data) and record its SHA-256 in
``SHA256SUMS`` beside it (checked whenever the shipped model is loaded).

    python scripts/ship_model.py logs/lit-colorize/<run>/checkpoints/<best>.ckpt [--overwrite]

Why a script: the shipped file must be small (no optimizer state, at most 10 MB) and must
colorize bit for bit like the checkpoint the model card measured.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from lit_colorize.colorizer import module_from_checkpoint
from lit_colorize.pretrained import CHECKSUMS_NAME, PRETRAINED_NAME, record_checksum, write_slim_checkpoint

SHIPPED = Path(__file__).resolve().parents[1] / "lit_colorize" / "weights" / PRETRAINED_NAME


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="the trained checkpoint (.ckpt) to ship")
    parser.add_argument("--out", default=str(SHIPPED))
    parser.add_argument("--overwrite", action="store_true", help="replace the shipped model")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        sys.exit(f"{out} exists; pass --overwrite to replace the shipped model")
    # Verified before it takes the shipped name, so a failed check never costs the model shipped before.
    candidate = out.with_name(f".{out.name}.candidate")
    size = write_slim_checkpoint(args.checkpoint, candidate)
    original, shipped = module_from_checkpoint(args.checkpoint), module_from_checkpoint(candidate)
    photo = torch.randint(0, 256, (3, 150, 200), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pairs = zip(original.net.colorize_photo(photo, [0.0, 1.0]), shipped.net.colorize_photo(photo, [0.0, 1.0]))
        same = all(torch.equal(a, b) for a, b in pairs)
    if not same:
        candidate.unlink()
        sys.exit(f"the slim copy of {args.checkpoint} does not colorize like the original; nothing shipped")
    os.replace(candidate, out)
    digest = record_checksum(out)
    print(f"wrote {out}: {size / 2**20:.2f} MB, colorizes exactly as {args.checkpoint}; SHA-256 {digest} in {out.parent / CHECKSUMS_NAME}")


if __name__ == "__main__":
    main()
