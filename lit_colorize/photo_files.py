"""A user's photos and videos as prediction inputs: files and folders in, one decoded photo
(or one video, to be streamed by the writer) per item.

A photo that cannot be read becomes an item that carries its error instead of pixels, so a
run over a folder reports it by path and goes on with the rest.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from lit_colorize.imageio import ImageReadError, read_image
from lit_colorize.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES, has_image_suffix, has_video_suffix, walk_files
from lit_colorize.outputs import DEFAULT_SUFFIX, OutputNames, PredictSetupError
from lit_colorize.prediction import PhotoItem
from lit_colorize.user_hints import HintError, parse_hints

HINTS_SIDECAR = ".hints.json"  # photo.jpg's hints, found beside it: photo.hints.json


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


def read_hints_file(path: str | Path) -> dict[Path, list]:
    """``--data.hints FILE.json``: ``{"photo path": [hint, ...], ...}``, paths relative to the
    current folder like every path on the command line; keyed by resolved path."""
    path = Path(path).expanduser()
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PredictSetupError(f"hints file {path} not found; give a JSON file mapping photo paths to lists of hints") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PredictSetupError(f"cannot read hints file {path}: {error}") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, list) for v in mapping.values()):
        raise PredictSetupError(
            f"hints file {path} must map photo paths to lists of hints, e.g. "
            '{"photo.jpg": [{"x": 120, "y": 45, "color": "#2a6fdb"}]}'
        )
    return {Path(photo).expanduser().resolve(): hints for photo, hints in mapping.items()}


def sidecar_hints(photo: Path) -> list | None:
    """The hints of ``photo.hints.json`` beside ``photo.jpg``, when it exists."""
    sidecar = photo.with_name(photo.stem + HINTS_SIDECAR)
    if not sidecar.is_file():
        return None
    try:
        hints = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HintError(f"{photo}: cannot read its hints file {sidecar}: {error}") from None
    return hints


class PhotoDataset(Dataset):
    """Decodes each photo at full resolution (torchvision.io or Pillow; EXIF orientation,
    alpha kept); unreadable files give an item with ``error`` set. A photo's hints come from
    ``hints_file`` (``--data.hints``) or its sidecar ``<name>.hints.json``, checked against its
    size; bad hints make that photo's error."""

    def __init__(
        self,
        inputs: Sequence[str | Path],
        output_dir: str | Path | None = None,
        suffix: str = DEFAULT_SUFFIX,
        hints_file: str | Path | None = None,
    ) -> None:
        self.photos = find_photos(inputs, output_dir, suffix)
        self.hints = read_hints_file(hints_file) if hints_file is not None else {}

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
            raw = self.hints.get(path.resolve())
            hints = parse_hints(raw if raw is not None else sidecar_hints(path), str(path), *decoded.rgb.shape[-2:])
        except ImageReadError as error:
            return PhotoItem(str(path), relative_dir, error=str(error))
        except HintError as error:  # the writer prefixes the photo's path itself
            return PhotoItem(str(path), relative_dir, error=str(error).removeprefix(f"{path}: "))
        return PhotoItem(str(path), relative_dir, decoded.rgb, decoded.alpha, hints=hints or None)


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
