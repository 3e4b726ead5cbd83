"""Shard sets: photos packed into LitData chunks (JPEG bytes, not pixels), for training on
millions of photos from a local disk or an S3-compatible object store.

Why LitData: its chunks are a few large files instead of a million small ones (what chokes a
shared file system), its ``StreamingDataset`` splits them across ranks and workers and
streams them from ``s3://`` with a local cache, and its loader state resumes mid-epoch.

A shard set is a folder (or object-store prefix) with LitData's ``index.json`` and chunks,
plus :data:`MANIFEST` written by this module: the format version, the class names, and every
input file left out with the reason. A run writes ``train/`` and ``val/`` into a hidden
partial folder and renames it into place last, so an interrupted run never leaves a shard set
under the final name (a rerun removes the partial folder and starts again).
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from PIL import Image, UnidentifiedImageError

from lit_colorize.corpus import decode_photo, is_near_gray, shrink
from lit_colorize.errors import ConfigError, DataError
from lit_colorize.files import has_image_suffix, image_files

MANIFEST = "lit_colorize_shards.json"
INDEX = "index.json"
FORMAT = "lit-colorize-shards"
VERSION = 1  # bump when the item layout changes; older sets are refused with a rebuild hint
SPLITS = ("train", "val")
JPEG_QUALITY = 90


@dataclass
class ShardReport:
    """What one run wrote and left out (path -> reason)."""

    written: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def input_files(inputs: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(photo, class name) for every input: a folder (walked), or a ``.txt`` file list whose
    relative paths are relative to the list's folder. The class is the photo's folder name."""
    found = []
    for source in map(Path, inputs):
        if source.is_dir():
            found += [(path, path.parent.name) for path in image_files(source)]
        elif source.is_file() and source.suffix == ".txt":
            lines = source.read_text(encoding="utf-8").splitlines()
            paths = [source.parent / line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
            found += [(path, path.parent.name) for path in paths if has_image_suffix(path)]
        else:
            raise ConfigError(f"shards input {source} is neither a folder nor a .txt file list; pass photo folders or lists")
    return found


def encode_photo(path: Path, short_side: int, gray_threshold: float | None) -> bytes:
    """The JPEG bytes to store for ``path``: decoded, shrunk to ``short_side``, checked against
    the near-gray rule. ``ValueError`` says why the photo is left out."""
    image = decode_photo(path.read_bytes())
    if min(image.size) < 2:
        raise ValueError(f"unreadable: {image.width}x{image.height} pixels")
    image = shrink(image, short_side)
    if gray_threshold is not None and is_near_gray(image, gray_threshold):
        raise ValueError("near-gray")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def split_files(files: list[tuple[Path, str]], val_fraction: float, seed: int) -> dict[str, list[tuple[Path, str]]]:
    """A seeded held-out split of the sorted inputs (the same files whatever the input order), each
    split in a seeded order, so the first N samples (the color table's bounded pass) are a fair sample."""
    files = sorted(files)
    order = np.random.default_rng(seed).permutation(len(files))
    count = max(1, round(val_fraction * len(files))) if len(files) > 1 else 0
    held = set(order[:count].tolist())  # written in the seeded order: any prefix of a set is a uniform sample
    return {"train": [files[i] for i in order if i not in held], "val": [files[i] for i in order if i in held]}


def write_split(files: list[tuple[Path, str]], folder: Path, classes: list[str], short_side: int,
                gray_threshold: float | None, chunk_bytes: str, report: ShardReport) -> int:  # fmt: skip
    """Write one split's chunks and index into ``folder``; the number of photos written."""
    from litdata.streaming.writer import BinaryWriter

    writer = BinaryWriter(str(folder), chunk_bytes=chunk_bytes)
    label = {name: i for i, name in enumerate(classes)}
    written = 0
    for path, category in files:
        try:
            data = encode_photo(path, short_side, gray_threshold)
        except (OSError, ValueError) as error:
            report.skipped[str(path)] = str(error)
            continue
        # the path as bytes: LitData would store a str that names an image file as that image
        writer.add_item(written, {"jpeg": data, "label": label[category], "key": str(path).encode()})
        written += 1
    if written == 0:
        raise DataError(f"no photo of the {folder.name} split could be written to {folder.parent}; see the skipped files")
    writer.done()
    writer.merge()
    return written


def write_shards(inputs: Sequence[str | Path], output: str | Path, short_side: int = 256, val_fraction: float = 0.02,
                 seed: int = 0, gray_threshold: float | None = 6.0, chunk_bytes: str = "64MB",
                 overwrite: bool = False) -> ShardReport:  # fmt: skip
    """Turn photo folders or lists into ``output/train`` and ``output/val`` shard sets."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise ConfigError(f"shard set {output} exists; pass --overwrite to rebuild it, or another output folder")
    files = input_files(inputs)
    if len(files) < 2:
        raise DataError(f"shards: {len(files)} photos found in {list(map(str, inputs))}; need at least 2 (train and val)")
    partial = output.with_name(f".{output.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # what an interrupted run left
    report = ShardReport()
    classes = sorted({category for _, category in files})
    for split, chosen in split_files(files, val_fraction, seed).items():
        count = write_split(chosen, partial / split, classes, short_side, gray_threshold, chunk_bytes, report)
        report.written[split] = count
        manifest = {"format": FORMAT, "version": VERSION, "split": split, "count": count, "short_side": short_side,
                    "classes": classes, "skipped": {p: r for p, r in report.skipped.items()}}  # fmt: skip
        (partial / split / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    if output.exists():
        shutil.rmtree(output)
    os.replace(partial, output)
    return report


# Reading a shard set back: checks that turn litdata's failures into one line naming the set.


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def s3_client(storage_options: dict[str, Any] | None) -> Any:
    import boto3

    return boto3.client("s3", **(storage_options or {}))


def list_objects(uri: str, storage_options: dict[str, Any] | None) -> dict[str, int]:
    """name -> size of every object directly under ``uri`` (local folder or ``s3://``)."""
    if not is_remote(uri):
        folder = Path(uri)
        if not folder.is_dir():
            raise DataError(f"shard set {uri} does not exist; check the path or run scripts/make_shards.py first")
        return {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    parsed = urlparse(uri)
    if parsed.scheme != "s3":
        raise DataError(f"shard set {uri}: only local paths and s3:// URIs are supported (S3-compatible stores via endpoint_url)")
    import botocore.exceptions

    prefix = parsed.path.strip("/") + "/"
    try:
        pages = s3_client(storage_options).get_paginator("list_objects_v2").paginate(Bucket=parsed.netloc, Prefix=prefix)
        found = {item["Key"][len(prefix):]: item["Size"] for page in pages for item in page.get("Contents", [])}
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "403"):
            raise DataError(f"shard set {uri}: the store refused the credentials ({code}); check AWS_ACCESS_KEY_ID/"
                            f"AWS_SECRET_ACCESS_KEY or the profile") from None  # fmt: skip
        if code == "NoSuchBucket":
            raise DataError(f"shard set {uri}: no bucket {parsed.netloc!r} in the store; check the URI") from None
        raise DataError(f"shard set {uri}: the store answered {code or error}; check the URI and endpoint_url") from None
    except botocore.exceptions.BotoCoreError as error:
        raise DataError(f"shard set {uri}: cannot reach the store ({error}); check endpoint_url") from None
    if not found:
        raise DataError(f"shard set {uri} is empty or does not exist; check the URI or upload the shards")
    return {name: size for name, size in found.items() if "/" not in name}


def read_object(uri: str, name: str, storage_options: dict[str, Any] | None, length: int | None = None) -> bytes:
    """The object ``name`` under ``uri``, or its first ``length`` bytes (one ranged request)."""
    if not is_remote(uri):
        with open(Path(uri) / name, "rb") as file:
            return file.read(-1 if length is None else length)
    parsed = urlparse(uri)
    key = parsed.path.strip("/") + "/" + name
    ranged = {} if length is None else {"Range": f"bytes=0-{length - 1}"}
    return s3_client(storage_options).get_object(Bucket=parsed.netloc, Key=key, **ranged)["Body"].read()


def header_problem(header: bytes, chunk: dict[str, Any]) -> str | None:
    """What is wrong with a chunk's header (LitData's layout: the item count, then the uint32
    offsets of its N items and of the end), or None. A damaged header makes LitData read
    nonsense or raise inside a loader worker, so it is found before training instead."""
    count = chunk["chunk_size"]
    values = np.frombuffer(header, dtype="<u4")
    if len(values) < count + 2:
        return f"damaged: its header is {len(header)} bytes, {4 * (count + 2)} expected"
    if values[0] != count:
        return f"damaged: its header says {int(values[0])} items, {INDEX} says {count}"
    offsets = values[1 : count + 2].astype(np.int64)
    if offsets[0] != 4 * (count + 2) or offsets[-1] != chunk["chunk_bytes"] or (np.diff(offsets) < 0).any():
        return f"damaged: its item offsets do not fit {count} items in {chunk['chunk_bytes']} bytes"
    return None


@dataclass
class ShardSetCheck:
    """What :func:`check_shard_set` found: the set's manifest, and its damaged chunks (file name
    -> what is wrong) with the number of photos they hold, which a run leaves out."""

    manifest: dict[str, Any]
    damaged: dict[str, str] = field(default_factory=dict)
    photos_left_out: int = 0
    photos: int = 0


def check_shard_set(uri: str, storage_options: dict[str, Any] | None = None) -> ShardSetCheck:
    """Check that the shard set at ``uri`` was written by this version of the command and that
    every chunk its index lists is there. A chunk whose size or header is not what the index
    says (a truncated or damaged copy) is reported in the result, not raised: the run trains on
    the rest; a missing chunk, or a set with no whole chunk, is an error."""
    uri = uri.rstrip("/")
    objects = list_objects(uri, storage_options)
    if MANIFEST not in objects or INDEX not in objects:
        missing = MANIFEST if INDEX in objects else INDEX
        raise DataError(f"shard set {uri} has no {missing}: not written by scripts/make_shards.py; rebuild it with that")
    manifest = json.loads(read_object(uri, MANIFEST, storage_options))
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise DataError(f"shard set {uri} is format {manifest.get('format')} version {manifest.get('version')}, this "
                        f"version reads {FORMAT} version {VERSION}; rebuild it with scripts/make_shards.py")  # fmt: skip
    chunks = json.loads(read_object(uri, INDEX, storage_options))["chunks"]
    check = ShardSetCheck(manifest, photos=sum(chunk["chunk_size"] for chunk in chunks))
    for chunk in chunks:
        name, size = chunk["filename"], chunk["chunk_bytes"]
        if name not in objects:
            raise DataError(f"shard set {uri}: chunk {name} is missing ({len(chunks)} listed in {INDEX}); "
                            f"copy it again or rebuild the set")  # fmt: skip
        if objects[name] != size:
            check.damaged[name] = f"truncated or damaged: {objects[name]} bytes, {INDEX} says {size}"
    whole = [chunk for chunk in chunks if chunk["filename"] not in check.damaged]
    with ThreadPoolExecutor(16 if is_remote(uri) else 1) as pool:  # one small ranged request a chunk
        headers = pool.map(lambda c: read_object(uri, c["filename"], storage_options, 4 * (c["chunk_size"] + 2)), whole)
        for chunk, header in zip(whole, headers):
            problem = header_problem(header, chunk)
            if problem is not None:
                check.damaged[chunk["filename"]] = problem
    check.photos_left_out = sum(chunk["chunk_size"] for chunk in chunks if chunk["filename"] in check.damaged)
    if len(check.damaged) == len(chunks):
        raise DataError(f"shard set {uri}: every chunk is truncated or damaged ({len(chunks)}, e.g. {name}: "
                        f"{check.damaged[name]}); copy the set again or rebuild it")  # fmt: skip
    return check


def decode_jpeg(data: bytes | memoryview, min_short_side: int | None = None) -> Image.Image:
    """RGB pixels of stored JPEG bytes; ``ValueError`` when the bytes are damaged. With
    ``min_short_side``, libjpeg decodes at the smallest of its scales (1/2, 1/4, 1/8) whose
    shorter side is still at least that: decoding is most of the loader's time, and a crop is
    then resized down to the training size anyway. The bytes are this module's own (RGB, no
    EXIF rotation), so the general :func:`decode_photo` and its copies are not needed."""
    try:
        image = Image.open(io.BytesIO(data))
        if min_short_side is not None and image.format == "JPEG":
            # libjpeg's scaled sizes round up; Pillow picks the scale from floor divisions
            factor = next(f for f in (8, 4, 2, 1) if f == 1 or math.ceil(min(image.size) / f) >= min_short_side)
            if factor > 1:
                image.draft("RGB", (image.width // factor, image.height // factor))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"not a readable image ({type(error).__name__}: {str(error)[:80]})") from None
    return image if image.mode == "RGB" else image.convert("RGB")


def sample_key(item: dict[str, Any]) -> str:
    """The source path a stored sample came from."""
    return bytes(item["key"]).decode("utf-8", "replace")
