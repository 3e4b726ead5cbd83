"""A training corpus from public photo repositories: read at a pinned commit, shrunk, with
near-gray photos, near-duplicates and look-alikes of benchmark test sets left out.

Why a module of its own: ``scripts/build_corpus.py`` is the command, but the pieces (reading
files out of a git clone, a near-duplicate index, the stratified held-out split) are what its
tests check against hand-written expectations, and what a user building another corpus reuses.

Sources are described in a JSON file (``docs/data/sources.json``): per source its repository,
commit, licence as stated, which paths to take with which category (first matching pattern
wins; ``"drop"`` leaves files out), which paths are benchmark test sets (never taken; their
perceptual hashes drop look-alikes from every source), and a frame stride for video-like
sources whose neighbouring files are near copies.
"""

from __future__ import annotations

import fnmatch
import io
import json
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from lit_colorize.color import near_gray_images, rgb_to_lab
from lit_colorize.errors import ConfigError
from lit_colorize.files import has_image_suffix
from lit_colorize.imageio import pillow_pixels

DROP = "drop"
HASH_BITS = 64  # imagehash's default 8x8 perceptual hash


@dataclass(frozen=True)
class Source:
    """One public source of photos: a git repository at a commit, or a plain folder."""

    name: str
    licence: str
    rules: tuple[tuple[str, str], ...]  # (fnmatch pattern on the path inside the source, category)
    repo: str | None = None  # owner/name; None for a folder source
    commit: str | None = None
    test_sets: tuple[str, ...] = ()  # patterns of benchmark test photos: hashed, never taken
    stride: int = 1  # take every stride-th file of each folder (video frames)

    def category(self, path: str) -> str | None:
        """The category of ``path`` by the first matching rule, or None where none matches."""
        for pattern, category in self.rules:
            if fnmatch.fnmatchcase(path, pattern):
                return category
        return None

    def is_test_set(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.test_sets)


def load_sources(path: str | Path) -> list[Source]:
    """The sources of a ``sources.json``; one line naming the file and the entry when malformed."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["sources"]
        sources = [
            Source(
                name=str(entry["name"]),
                licence=str(entry["licence"]),
                rules=tuple((str(pattern), str(category)) for pattern, category in entry["rules"]),
                repo=entry.get("repo"),
                commit=entry.get("commit"),
                test_sets=tuple(entry.get("test_sets", ())),
                stride=int(entry.get("stride", 1)),
            )
            for entry in entries
        ]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"cannot read the corpus sources {path}: {type(error).__name__}: {error}") from None
    names = [source.name for source in sources]
    if len(set(names)) != len(names) or any(s.stride < 1 or (s.repo is None) != (s.commit is None) for s in sources):
        raise ConfigError(f"{path}: source names must be unique, strides >= 1, and repo and commit given together")
    return sources


@dataclass(frozen=True)
class Entry:
    """A file a source offers: its path inside the source, and the blob or file to read."""

    path: str
    blob: str  # git object id, or the file's path on disk for a folder source
    is_link: bool = False


class GitClone:
    """Files of one commit of a local clone (bare or with a work tree), read through ``git
    cat-file --batch`` so that a clone missing some large objects still gives all the others
    (``git archive`` stops at the first missing one)."""

    def __init__(self, clone: Path, commit: str) -> None:
        self.git_dir = self._git_dir(clone)
        self.commit = commit
        check = self._git("cat-file", "-e", f"{commit}^{{commit}}", check=False)
        if check.returncode != 0:
            raise ConfigError(f"{clone} does not hold commit {commit}: clone the repository whole (git fetch) and retry")
        self._batch: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _git_dir(clone: Path) -> Path:
        for candidate in (clone / ".git", clone):
            if (candidate / "objects").is_dir() and (candidate / "HEAD").is_file():
                return candidate
        raise ConfigError(f"{clone} is not a git clone; pass the folder of a clone of the source's repository")

    def _git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["git", "--git-dir", str(self.git_dir), *args], capture_output=True, check=check)

    def entries(self) -> list[Entry]:
        """Every file of the commit, sorted by path (symlinks marked, submodules left out)."""
        listing = self._git("ls-tree", "-r", "-z", "--full-tree", self.commit).stdout.split(b"\0")
        found = []
        for line in filter(None, listing):
            meta, path = line.split(b"\t", 1)
            mode, kind, blob = meta.decode().split()
            if kind == "blob":
                found.append(Entry(path.decode("utf-8", "surrogateescape"), blob, is_link=mode == "120000"))
        return sorted(found, key=lambda entry: entry.path)

    def read(self, entry: Entry) -> bytes | None:
        """The file's bytes, or None where the clone lacks its object."""
        if self._batch is None:
            self._batch = subprocess.Popen(
                ["git", "--git-dir", str(self.git_dir), "cat-file", "--batch"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )  # fmt: skip
        assert self._batch.stdin is not None and self._batch.stdout is not None
        self._batch.stdin.write(entry.blob.encode() + b"\n")
        self._batch.stdin.flush()
        header = self._batch.stdout.readline().split()
        if len(header) != 3:  # "<id> missing"
            return None
        data = self._batch.stdout.read(int(header[2]))
        self._batch.stdout.read(1)  # the newline after each object
        return data

    def close(self) -> None:
        if self._batch is not None:
            self._batch.communicate()
            self._batch = None


class FolderSource:
    """Files below a plain folder (e.g. ``../shared/data/photos/bsds500``); symlinks are marked,
    never followed, so a link cannot pull in photos from outside the source."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise ConfigError(f"{root} is not a folder; pass the folder that holds the source's photos")
        self.root = root

    def entries(self) -> list[Entry]:
        found = []
        for path in sorted(self.root.rglob("*")):
            if path.is_symlink() or path.is_file():
                found.append(Entry(path.relative_to(self.root).as_posix(), str(path), is_link=path.is_symlink()))
        return found

    def read(self, entry: Entry) -> bytes | None:
        try:
            return Path(entry.blob).read_bytes()
        except OSError:
            return None

    def close(self) -> None:
        pass


class ListedFiles(FolderSource):
    """The photos named in a file list (one path a line, ``#`` comments; relative paths from the
    current folder), e.g. another model's held-out split that a corpus must not train on."""

    def __init__(self, listing: Path) -> None:
        try:
            lines = listing.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ConfigError(f"cannot read the file list {listing}: {error.strerror}") from None
        self.paths = [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    def entries(self) -> list[Entry]:
        return [Entry(path, path) for path in self.paths]


def strided(entries: Sequence[Entry], stride: int) -> list[Entry]:
    """Every ``stride``-th file of each folder, by sorted name (frames of a video are near copies)."""
    if stride == 1:
        return list(entries)
    kept, seen_in = [], dict[str, int]()
    for entry in entries:
        folder = entry.path.rpartition("/")[0]
        position = seen_in.get(folder, 0)
        seen_in[folder] = position + 1
        if position % stride == 0:
            kept.append(entry)
    return kept


def decode_photo(data: bytes) -> Image.Image:
    """8-bit RGB, EXIF orientation applied; ``ValueError`` for anything that is not a readable
    image (a Git LFS pointer, a truncated file, a decompression bomb)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb, _ = pillow_pixels(ImageOps.exif_transpose(image))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"not a readable image ({type(error).__name__}: {str(error)[:80]})") from None
    return Image.fromarray(rgb)


def shrink(image: Image.Image, short_side: int) -> Image.Image:
    """At most ``short_side`` pixels on the shorter side, aspect kept; smaller photos unchanged."""
    scale = short_side / min(image.size)
    if scale >= 1.0:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def is_near_gray(image: Image.Image, threshold: float) -> bool:
    """The project's one near-gray rule (:func:`~lit_colorize.color.near_gray_images`)."""
    rgb = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]
    return bool(near_gray_images(rgb_to_lab(rgb)[:, 1:], threshold)[0])


def perceptual_hash(image: Image.Image) -> int:
    """imagehash's pHash (DCT of a 32x32 gray thumbnail) as a 64-bit integer: survives
    resizing and recompression, so copies of one photo at other sizes match."""
    import imagehash

    return int(str(imagehash.phash(image)), 16)


@dataclass
class NearDuplicates:
    """Hashes within ``max_distance`` bits of each other found without comparing all pairs:
    the 64 bits are cut into ``max_distance + 1`` bands, and two hashes that close must agree
    exactly on at least one band (pigeonhole), so only hashes sharing a band are compared."""

    max_distance: int
    _bands: list[dict[int, list[int]]] = field(default_factory=list)
    _keys: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        count = self.max_distance + 1
        edges = [round(i * HASH_BITS / count) for i in range(count + 1)]
        self._spans = list(zip(edges[:-1], edges[1:]))
        self._bands = [{} for _ in range(count)]

    def _band_values(self, value: int) -> Iterator[tuple[int, int]]:
        for band, (low, high) in enumerate(self._spans):
            yield band, (value >> low) & ((1 << (high - low)) - 1)

    def find(self, value: int) -> str | None:
        """The key of a stored hash within ``max_distance`` of ``value`` (the first stored), or None."""
        candidates = {h for band, part in self._band_values(value) for h in self._bands[band].get(part, ())}
        close = [h for h in candidates if (h ^ value).bit_count() <= self.max_distance]
        return self._keys[min(close, key=lambda h: self._keys[h])] if close else None

    def add(self, value: int, key: str) -> None:
        if value in self._keys:
            return
        self._keys[value] = key
        for band, part in self._band_values(value):
            self._bands[band].setdefault(part, []).append(value)


def stratified_held_out(groups: dict[tuple[str, str], list[str]], fraction: float, seed: int) -> set[str]:
    """A seeded ``fraction`` of each (source, category) group's files, at least one of any group
    of ten or more, so every source and category is measured."""
    rng = np.random.default_rng(seed)
    held_out: set[str] = set()
    for key in sorted(groups):
        files = sorted(groups[key])
        count = round(fraction * len(files))
        if count == 0 and len(files) >= 10:
            count = 1
        held_out.update(files[i] for i in rng.permutation(len(files))[:count])
    return held_out


def corpus_file_name(source: str, category: str, path: str) -> str:
    """Where a photo goes in the corpus: ``source/category/path-with-dashes.jpg``, readable and
    flat; a suffix other than ``.jpg`` stays in the name (``a.png`` -> ``a_png.jpg``), so ``a.jpg``
    and ``a.png`` beside it stay two photos (:class:`NameBook` settles what is left)."""
    stem, dot, suffix = path.rpartition(".")
    if not dot or "/" in suffix:
        stem, suffix = path, ""
    flat = stem if suffix == "jpg" else f"{stem}_{suffix.lower()}" if suffix else stem
    return f"{source}/{category}/{flat.replace('/', '--').replace(' ', '_')}.jpg"


class NameBook:
    """Unique corpus names in build order: a name already given gets ``~2``, ``~3``... (two
    source paths that differ only in case or spaces), so no photo is written over another."""

    def __init__(self) -> None:
        self.given: set[str] = set()

    def claim(self, name: str) -> str:
        base, count, unique = name.removesuffix(".jpg"), 1, name
        while unique in self.given:
            count += 1
            unique = f"{base}~{count}.jpg"
        self.given.add(unique)
        return unique


def photo_entries(entries: Sequence[Entry], source: Source) -> tuple[list[tuple[Entry, str]], list[Entry]]:
    """(files to take with their category, files that are benchmark test photos), both images only."""
    taken, tests = [], []
    for entry in entries:
        if not has_image_suffix(Path(entry.path)):
            continue
        if source.is_test_set(entry.path):
            tests.append(entry)
            continue
        category = source.category(entry.path)
        if category is not None and category != DROP:
            taken.append((entry, category))
    kept = {id(e) for e in strided([e for e, _ in taken], source.stride)}
    return [(e, c) for e, c in taken if id(e) in kept], tests
