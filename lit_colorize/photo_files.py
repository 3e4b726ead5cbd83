"""A user's photos and videos as prediction inputs: files and folders in, one decoded photo
(or one video, to be streamed by the writer) per item.

A photo that cannot be read becomes an item that carries its error instead of pixels, so a
run over a folder reports it by path and goes on with the rest.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from lit_colorize.imageio import ImageReadError, read_image
from lit_colorize.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES, has_image_suffix, has_video_suffix, walk_files
from lit_colorize.outputs import DEFAULT_SUFFIX, OutputNames
from lit_colorize.prediction import PhotoItem


@dataclass(frozen=True)
class PhotoSource:
    """A photo file to read and where its outputs go below the output folder, or a path that
    cannot be read at all (a symlink loop, a folder that cannot be listed) with its ``error``."""

    path: Path
    relative_dir: str = ""
    error: str | None = None


def _link_problem(path: Path) -> tuple[str, bool] | None:
    """Why the symlink ``path`` cannot be followed, and whether it is a loop; None when it can."""
    try:
        path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"cannot read image {path}: it is a symbolic link loop", True
        return f"cannot read image {path}: it is a symbolic link to {os.readlink(path)}, which does not exist", False
    return None


def find_photos(
    inputs: Sequence[str | Path], output_dir: str | Path | None = None, suffix: str = DEFAULT_SUFFIX
) -> list[PhotoSource]:
    """Every photo and video of ``inputs``: files as given (any extension; a video container's
    suffix makes it a video), folders searched recursively for image and video files, in
    sorted order. Never inputs, in a folder search: the output folder
    (when inside an input folder) and the files predict writes (:class:`OutputNames` of
    ``suffix``). A symlink that cannot be followed and a folder that cannot be listed come as
    sources with an ``error``, so they are reported by path; a missing input is an error."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    own = OutputNames(suffix)
    skip_dirs = [Path(output_dir).expanduser()] if output_dir is not None else []
    found: list[PhotoSource] = []
    for entry in inputs:
        root = Path(entry).expanduser()
        if root.is_file():
            found.append(PhotoSource(root))
        elif root.is_dir():
            found.extend(_search_folder(root, skip_dirs, own))
        elif root.is_symlink():  # given directly, yet cannot be followed: reported like a corrupt file
            problem = _link_problem(root)
            found.append(PhotoSource(root, "", problem[0] if problem else f"cannot read image {root}"))
        else:
            raise FileNotFoundError(f"input {root} does not exist: give photo files or folders of photos")
    if not found:
        raise FileNotFoundError(
            f"no photos or videos found in {[str(i) for i in inputs]} "
            f"(looked for {', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))})"
        )
    return found


def _search_folder(root: Path, skip_dirs: list[Path], own: OutputNames) -> list[PhotoSource]:
    """The photos below ``root``, outputs of this tool and ``skip_dirs`` left out; symlinks with an
    image's name that cannot be followed, any symlink loop, and unlistable folders as errors."""
    sources = []
    for path, error in walk_files(root, skip_dirs):
        if error is not None:
            sources.append(PhotoSource(path, "", f"cannot search folder {path}: {error.strerror}"))
            continue
        if own.is_own(path.name):
            continue
        relative = path.parent.relative_to(root).as_posix()
        relative = "" if relative == "." else relative
        problem = _link_problem(path) if path.is_symlink() else None
        is_image_name = has_image_suffix(path) or has_video_suffix(path)
        if problem is not None and (is_image_name or problem[1]):
            sources.append(PhotoSource(path, relative, problem[0]))
        elif problem is None and is_image_name and path.is_file():
            sources.append(PhotoSource(path, relative))
    return sorted(sources, key=lambda source: source.path)


class PhotoDataset(Dataset):
    """Decodes each photo at full resolution (torchvision.io or Pillow; EXIF orientation,
    alpha kept); unreadable files give an item with ``error`` set."""

    def __init__(
        self, inputs: Sequence[str | Path], output_dir: str | Path | None = None, suffix: str = DEFAULT_SUFFIX
    ) -> None:
        self.photos = find_photos(inputs, output_dir, suffix)

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, index: int) -> PhotoItem:
        source = self.photos[index]
        path, relative_dir = source.path, source.relative_dir
        if source.error is not None:
            return PhotoItem(str(path), relative_dir, error=source.error)
        if has_video_suffix(path):  # streamed by the writer, never decoded whole here
            return PhotoItem(str(path), relative_dir, is_video=True)
        try:
            decoded = read_image(path)
        except ImageReadError as error:
            return PhotoItem(str(path), relative_dir, error=str(error))
        return PhotoItem(str(path), relative_dir, decoded.rgb, decoded.alpha)


def collate_photos(items: list[PhotoItem]) -> list[PhotoItem]:
    """Photos differ in size: a batch is a list, not a stacked tensor."""
    return list(items)


def read_file_list(list_path: str | Path) -> list[str]:
    """The photo paths a list file names, one per line (``--files_from``, as tar and rsync take
    it): blank lines and ``#`` comments are skipped; relative paths are relative to the current
    folder, like every other path on the command line. A missing list or listed file is one
    line naming both."""
    list_path = Path(list_path).expanduser()
    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"file list {list_path} not found; give a text file of photo paths, one a line") from None
    except (OSError, UnicodeDecodeError) as error:
        raise FileNotFoundError(f"cannot read file list {list_path} ({error}); give a text file of photo paths") from None
    paths = []
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if not Path(entry).expanduser().exists():
            raise FileNotFoundError(
                f"{list_path}:{number}: {entry} does not exist (paths are relative to the current folder, {Path.cwd()})"
            )
        paths.append(entry)
    if not paths:
        raise FileNotFoundError(f"file list {list_path} names no photos")
    return paths
