"""Which files are images, and the one recursive folder scan that finds them.

Landscape (training photos) and ``lit-colorize predict`` (a user's photos) both search
folders here, so a new kind of input (video) adds its suffixes in one place.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
# Containers ``lit-colorize predict`` colorizes as videos (decoded by PyAV, lit_colorize.video.io).
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mkv", ".avi", ".mov", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv", ".ts", ".3gp"}
)


def has_image_suffix(path: Path) -> bool:
    """Whether ``path``'s name ends in an image suffix (any case); says nothing of its content."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def has_video_suffix(path: str | Path) -> bool:
    """Whether ``path``'s name ends in a video container's suffix (any case)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def walk_files(root: Path, skip_dirs: Iterable[Path] = ()) -> Iterator[tuple[Path, OSError | None]]:
    """Every file below ``root`` in sorted order, without following symlinked folders (as
    ``Path.rglob``), skipping ``skip_dirs``; a folder that cannot be listed comes as
    ``(folder, error)``."""
    skipped = {os.path.normcase(os.path.realpath(d)) for d in skip_dirs}
    errors: list[OSError] = []
    for directory, dirnames, filenames in os.walk(root, onerror=errors.append):
        while errors:
            error = errors.pop()
            yield Path(error.filename or directory), error
        dirnames[:] = sorted(d for d in dirnames if os.path.normcase(os.path.realpath(Path(directory, d))) not in skipped)
        for name in sorted(filenames):
            yield Path(directory, name), None
    while errors:
        error = errors.pop()
        yield Path(error.filename or root), error


def image_files(root: Path) -> list[Path]:
    """The image files below ``root`` (symlinks to files included, hidden ones too), sorted by
    path; folders that cannot be listed are passed over."""
    return sorted(path for path, error in walk_files(root) if error is None and has_image_suffix(path) and path.is_file())
