"""Make a trained checkpoint the shipped model: slim it, check it colorizes exactly as the
original, write it to ``lit_colorize/weights/`` (package data) and record its SHA-256 in
``SHA256SUMS`` beside it (checked whenever the shipped model is loaded).

    python scripts/ship_model.py logs/lit-colorize/<run>/checkpoints/<best>.ckpt [--overwrite] \
        [--predict_working_size 128] [--predict_decoding annealed_mean:0.38] [--out lit_colorize/weights/NAME.ckpt]

``--predict_working_size`` and ``--predict_decoding`` record what predict, the Colorizer, the
page and video use for this model by default, as measured for it (``benchmarks/working_size.py``,
``lit-colorize evaluate``); they are hyperparameters, so the weights are untouched.

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
from lit_colorize.errors import check_working_size
from lit_colorize.options import check_predict_decoding
from lit_colorize.pretrained import CHECKSUMS_NAME, PRETRAINED_NAME, record_checksum, write_slim_checkpoint

SHIPPED = Path(__file__).resolve().parents[1] / "lit_colorize" / "weights" / PRETRAINED_NAME


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="the trained checkpoint (.ckpt) to ship")
    parser.add_argument("--out", default=str(SHIPPED))
    parser.add_argument("--overwrite", action="store_true", help="replace the shipped model")
    parser.add_argument("--predict_working_size", type=int, default=None, help="the model's measured working size")
    parser.add_argument("--predict_decoding", default=None, metavar="NAME:T", help="e.g. annealed_mean:0.38")
    args = parser.parse_args(argv)
    defaults: dict = {}
    if args.predict_working_size is not None:
        defaults["predict_working_size"] = check_working_size(args.predict_working_size, "--predict_working_size")
    if args.predict_decoding is not None:
        name, _, temperature = args.predict_decoding.partition(":")
        decoding = check_predict_decoding({"name": name, "temperature": temperature or "nan"}, "--predict_decoding")
        defaults["predict_decoding"] = decoding.as_hparam()
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        sys.exit(f"{out} exists; pass --overwrite to replace the shipped model")
    # Verified before it takes the shipped name, so a failed check never costs the model shipped before.
    candidate = out.with_name(f".{out.name}.candidate")
    size = write_slim_checkpoint(args.checkpoint, candidate, defaults)
    original, shipped = module_from_checkpoint(args.checkpoint), module_from_checkpoint(candidate)
    photo = torch.randint(0, 256, (3, 150, 200), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    size_64 = 64  # one explicit working size: the recorded default may differ from the original's
    with torch.no_grad():
        pairs = zip(original.net.colorize_photo(photo, [0.0, 1.0], size_64), shipped.net.colorize_photo(photo, [0.0, 1.0], size_64))
        same = all(torch.equal(a, b) for a, b in pairs)
    if not same:
        candidate.unlink()
        sys.exit(f"the slim copy of {args.checkpoint} does not colorize like the original; nothing shipped")
    os.replace(candidate, out)
    digest = record_checksum(out)
    print(f"wrote {out}: {size / 2**20:.2f} MB, colorizes exactly as {args.checkpoint}; SHA-256 {digest} in {out.parent / CHECKSUMS_NAME}")
    if defaults:
        print(f"predict's defaults for it: {defaults}")


if __name__ == "__main__":
    main()
