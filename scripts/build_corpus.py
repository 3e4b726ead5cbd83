"""Build the general training corpus from local clones of public photo repositories.

    python scripts/build_corpus.py --out ~/data/corpus \\
        --source imagenet=/src/imagenet-sample-images --source caltech101=/src/Homework2-Caltech101 \\
        --source facemask=/src/Face-Mask-Detection --source camvid=/src/segnet \\
        --source intel=/src/Image_Classification_Using_Deep_Learning --source bsds500=../shared/data/photos/bsds500

The sources, their commits, licences and categories are in ``docs/data/sources.json``; every
source there must be given. Each photo is read at the pinned commit, decoded, checked and
stored as JPEG at most ``--short_side`` pixels on its shorter side. Left out, each with its
reason in ``skipped.csv``: unreadable files, symlinks, objects missing from a clone,
near-gray photos (the project's rule: no pixel of chroma above ``--gray_threshold``),
near-duplicates within and across sources (perceptual hash within ``--max_distance`` bits;
the first in source order is kept), and look-alikes of benchmark test photos (the sources'
``test_sets`` and every ``--exclude_like`` folder or file list, e.g. Landscape's held-out
split, so that v1 and v2 are compared on photos neither trained on).

The corpus appears under ``--out`` only when complete (it is built in ``<out>.partial``), and
an existing ``--out`` is never touched. ``manifest.csv`` records source, repository, commit,
path, category, licence and hashes of every photo; the seeded held-out split (stratified by
source and category) is written as file lists to ``--lists`` (``docs/data/``), which the
repository commits; the photos themselves are never committed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from lit_colorize.atomic import atomic_path
from lit_colorize.corpus import (
    Entry,
    FolderSource,
    GitClone,
    ListedFiles,
    NameBook,
    NearDuplicates,
    Source,
    corpus_file_name,
    decode_photo,
    is_near_gray,
    load_sources,
    perceptual_hash,
    photo_entries,
    shrink,
    stratified_held_out,
)
from lit_colorize.errors import ConfigError

MANIFEST_FIELDS = ("file", "source", "repo", "commit", "path", "category", "licence", "phash", "sha256", "width", "height")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", default="docs/data/sources.json", help="the sources table (JSON)")
    parser.add_argument("--source", action="append", default=[], metavar="NAME=PATH",
                        help="where a source's clone (or folder) is on this computer; one per source")  # fmt: skip
    parser.add_argument("--exclude_like", action="append", default=[], metavar="FOLDER",
                        help="a folder or file list of photos never to train on (benchmark test sets, "
                             "another model's held-out split): look-alikes are left out (repeatable)")  # fmt: skip
    parser.add_argument("--out", required=True, help="the corpus folder to create (must not exist)")
    parser.add_argument("--lists", default="docs/data", help="where heldout.txt and train.txt are written")
    parser.add_argument("--short_side", type=int, default=256)
    parser.add_argument("--gray_threshold", type=float, default=6.0)
    parser.add_argument("--max_distance", type=int, default=4, help="perceptual-hash bits two copies may differ by")
    parser.add_argument("--heldout_fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def source_paths(sources: Sequence[Source], given: Sequence[str]) -> dict[str, Path]:
    """``NAME=PATH`` arguments checked against the sources table: each source exactly once."""
    paths: dict[str, Path] = {}
    known = {source.name for source in sources}
    for item in given:
        name, sep, path = item.partition("=")
        if not sep or name not in known:
            raise ConfigError(f"--source {item!r}: expected NAME=PATH with NAME one of {sorted(known)}")
        paths[name] = Path(path).expanduser()
    missing = sorted(known - paths.keys())
    if missing:
        raise ConfigError(f"no --source given for {', '.join(missing)}; pass --source NAME=PATH for each (see --sources)")
    return paths


def open_source(source: Source, path: Path) -> GitClone | FolderSource:
    return GitClone(path, source.commit) if source.commit else FolderSource(path)


class Builder:
    """One pass over the sources: test-set hashes first, then every photo in source order."""

    def __init__(self, args: argparse.Namespace, staging: Path) -> None:
        self.args, self.staging = args, staging
        self.test_photos = NearDuplicates(args.max_distance)
        self.kept = NearDuplicates(args.max_distance)
        self.names = NameBook()
        self.rows: list[dict[str, object]] = []
        self.skipped: list[tuple[str, str, str, str]] = []  # source, path, reason, detail

    def hash_test_photos(self, name: str, reader: GitClone | FolderSource, entries: Sequence[Entry]) -> None:
        for entry in entries:
            data = None if entry.is_link else reader.read(entry)
            try:
                self.test_photos.add(perceptual_hash(decode_photo(data or b"")), f"{name}:{entry.path}")
            except ValueError:
                continue  # an unreadable test photo cannot leak into training either

    def take(self, source: Source, reader: GitClone | FolderSource, entry: Entry, category: str) -> None:
        left_out = self._take(source, reader, entry, category)
        if left_out:
            self.skipped.append((source.name, entry.path, *left_out))

    def _take(self, source: Source, reader: GitClone | FolderSource, entry: Entry, category: str) -> tuple[str, str] | None:
        """None when the photo was taken, else (reason, detail)."""
        if entry.is_link:
            return "symbolic link", "not followed"
        data = reader.read(entry)
        if data is None:
            return "missing from the clone", ""
        try:
            image = decode_photo(data)
        except ValueError as error:
            return "unreadable", str(error)
        value = perceptual_hash(image)
        if (test_photo := self.test_photos.find(value)) is not None:
            return "look-alike of a test or held-out photo", test_photo
        small = shrink(image, self.args.short_side)
        if is_near_gray(small, self.args.gray_threshold):
            return "near-gray", ""
        if (original := self.kept.find(value)) is not None:
            return "duplicate", f"of {original}"
        name = self.names.claim(corpus_file_name(source.name, category, entry.path))
        target = self.staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        small.save(target, format="JPEG", quality=95)
        self.kept.add(value, name)
        self.rows.append(
            {
                "file": name, "source": source.name, "repo": source.repo or "", "commit": source.commit or "",
                "path": entry.path, "category": category, "licence": source.licence, "phash": f"{value:016x}",
                "sha256": hashlib.sha256(data).hexdigest(), "width": small.width, "height": small.height,
            }
        )  # fmt: skip
        return None


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_list(path: Path, files: Sequence[str], comment: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        Path(temporary).write_text(f"# {comment}\n" + "".join(f"{name}\n" for name in files), encoding="utf-8")


def summary(rows: Sequence[dict[str, object]], skipped: Sequence[tuple[str, str, str, str]], held_out: set[str]) -> str:
    """Counts per source and category, and why files were left out, as a Markdown table."""
    counts = Counter((row["source"], row["category"]) for row in rows)
    held = Counter((row["source"], row["category"]) for row in rows if row["file"] in held_out)
    lines = ["| source | category | photos | held out |", "|---|---|---:|---:|"]
    lines += [f"| {s} | {c} | {n} | {held[(s, c)]} |" for (s, c), n in sorted(counts.items())]
    lines.append(f"| **all** | | **{len(rows)}** | **{len(held_out)}** |")
    reasons = Counter(reason for _, _, reason, _ in skipped)
    lines += ["", "| left out | files |", "|---|---:|"] + [f"| {r} | {n} |" for r, n in reasons.most_common()]
    return "\n".join(lines)


def build(args: argparse.Namespace) -> str:
    sources = load_sources(args.sources)
    paths = source_paths(sources, args.source)
    out = Path(args.out).expanduser()
    if out.exists():
        raise ConfigError(f"{out} already exists; choose another --out (nothing in it was changed)")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted build of this same corpus
    builder = Builder(args, staging)
    readers = {source.name: open_source(source, paths[source.name]) for source in sources}
    try:
        listed = {source.name: photo_entries(readers[source.name].entries(), source) for source in sources}
        for source in sources:
            builder.hash_test_photos(source.name, readers[source.name], listed[source.name][1])
        for given in args.exclude_like:
            path = Path(given).expanduser()
            reader = ListedFiles(path) if path.is_file() else FolderSource(path)
            builder.hash_test_photos(f"exclude_like {given}", reader, reader.entries())
        for source in sources:
            taken = listed[source.name][0]
            print(f"{source.name}: {len(taken)} files to check", file=sys.stderr, flush=True)
            for entry, category in taken:
                builder.take(source, readers[source.name], entry, category)
    finally:
        for reader in readers.values():
            reader.close()
    rows = builder.rows
    staging.mkdir(parents=True, exist_ok=True)
    write_csv(staging / "manifest.csv", MANIFEST_FIELDS, [[row[k] for k in MANIFEST_FIELDS] for row in rows])
    write_csv(staging / "skipped.csv", ("source", "path", "reason", "detail"), builder.skipped)
    os.rename(staging, out)
    groups: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        groups.setdefault((str(row["source"]), str(row["category"])), []).append(str(row["file"]))
    held_out = stratified_held_out(groups, args.heldout_fraction, args.seed)
    files = sorted(str(row["file"]) for row in rows)
    how = f"fraction {args.heldout_fraction}, seed {args.seed}, stratified by source and category; relative to the corpus folder"
    write_list(Path(args.lists) / "heldout.txt", [f for f in files if f in held_out], f"held-out photos ({how})")
    write_list(Path(args.lists) / "train.txt", [f for f in files if f not in held_out], f"training photos ({how})")
    return summary(rows, builder.skipped, held_out)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        print(build(parse_args(argv)))
    except ConfigError as error:
        sys.exit(f"build_corpus: {error}")


if __name__ == "__main__":
    main()
