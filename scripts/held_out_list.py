"""Write the held-out split of a Landscape datamodule as a file list for ``lit-colorize evaluate
--files_from``: the photos training never saw, in the datamodule's own seeded split.

    python scripts/held_out_list.py --roots ../shared/data/landscape --out docs/model/heldout_landscape.txt

Why: the split is decided by the seed over the readable photos; writing it down lets anyone
evaluate on exactly the photos a model card reports, without rerunning the datamodule. The
split depends on ``roots``, ``val_fraction`` and ``seed`` only (``train_roots`` never moves it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from datamodules import Landscape


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roots", nargs="+", default=["../shared/data/landscape"])
    parser.add_argument("--val_fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image_size", type=int, default=64, help="of the decode cache (shared with training)")
    parser.add_argument("--cache_dir", default=".cache/lit-colorize")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    datamodule = Landscape(
        roots=args.roots, val_fraction=args.val_fraction, seed=args.seed, image_size=args.image_size, cache_dir=args.cache_dir
    )
    datamodule.setup("fit")
    paths = datamodule.val_paths()
    header = (
        f"# held-out split of Landscape(roots={args.roots}, val_fraction={args.val_fraction}, seed={args.seed}): "
        f"{len(paths)} photos, relative to the repository root\n"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + "".join(f"{path}\n" for path in paths), encoding="utf-8")
    print(f"wrote {out}: {len(paths)} held-out photos")


if __name__ == "__main__":
    main()
