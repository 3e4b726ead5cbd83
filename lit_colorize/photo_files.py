"""A user's photos and videos as prediction inputs: files and folders in, one decoded photo
(or one video, to be streamed by the writer) per item.

A photo that cannot be read becomes an item that carries its error instead of pixels, so a
run over a folder reports it by path and goes on with the rest.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch.utils.data import Dataset

from lit_colorize.imageio import ImageReadError, read_image
from lit_colorize.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES, has_image_suffix, has_video_suffix, walk_files
from lit_colorize.outputs import DEFAULT_SUFFIX, OutputNames, PredictSetupError
from lit_colorize.prediction import PhotoItem
from lit_colorize.user_hints import HintError, parse_hints

HINTS_SIDECAR = ".hints.json"  # photo.jpg's hints, found beside it: photo.hints.json
#: How deep a photo's hints may nest: a list of hints is 3 deep (``[{"color": [r, g, b]}]``).
#: Deeper JSON is refused before it is decoded: Python's decoder recurses once per level and
#: would end the whole run (RecursionError) on a few thousand brackets.
MAX_HINTS_DEPTH = 8
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # a string (skipped whole), or a bracket


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


@dataclass
class JsonNesting:
    """How deep a JSON text nests, and, for a top-level object, which members nest deeper than
    a limit: their keys and (start, end) spans in the text."""

    depth: int = 0
    deep_members: dict[str, tuple[int, int]] = field(default_factory=dict)


def json_nesting(text: str, limit: int = MAX_HINTS_DEPTH) -> JsonNesting:
    """One pass over the brackets outside strings (a regular expression, no recursion)."""
    nesting = JsonNesting()
    depth, key, value_start, value_depth = 0, None, -1, 0
    last_string: tuple[str, int] | None = None
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            last_string = (token, match.end()) if depth == 1 else last_string
            continue
        if token in "[{":
            if depth == 1 and last_string is not None and text[last_string[1] : match.start()].strip() == ":":
                key, value_start, value_depth = last_string[0], match.start(), 0
            depth += 1
            nesting.depth = max(nesting.depth, depth)
            value_depth = max(value_depth, depth - 1)
            continue
        depth -= 1
        if depth == 1 and value_start >= 0:
            if value_depth > limit and key is not None:
                nesting.deep_members[decode_key(key)] = (value_start, match.end())
            value_start = -1
    return nesting


def decode_key(token: str) -> str:
    """A JSON string token as its text (an undecodable one as written)."""
    try:
        return json.loads(token)
    except ValueError:
        return token.strip('"')


@dataclass
class HintsFile:
    """``--data.hints FILE.json`` as read: each photo's hints by resolved path, the photos whose
    entry cannot be used (nested too deep) with why, and each resolved path's key as written."""

    path: Path
    hints: dict[Path, list] = field(default_factory=dict)
    errors: dict[Path, str] = field(default_factory=dict)
    keys: dict[Path, str] = field(default_factory=dict)


def read_hints_file(path: str | Path) -> HintsFile:
    """``--data.hints FILE.json``: ``{"photo path": [hint, ...], ...}``, paths relative to the
    current folder like every path on the command line; keyed by resolved path. A file that
    cannot be read is one line for the run (PredictSetupError); an entry nested deeper than
    :data:`MAX_HINTS_DEPTH` fails its photo alone."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PredictSetupError(f"hints file {path} not found; give a JSON file mapping photo paths to lists of hints") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PredictSetupError(f"cannot read hints file {path}: {error}") from None
    nesting = json_nesting(text)
    for start, end in sorted(nesting.deep_members.values(), reverse=True):  # decoded as null, reported per photo
        text = text[:start] + "null" + text[end:]
    if nesting.depth > MAX_HINTS_DEPTH + 1 and not nesting.deep_members:
        raise PredictSetupError(f"hints file {path} nests {nesting.depth} levels deep; {HINTS_FILE_FORM}")
    try:
        mapping = json.loads(text)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, an integer of over 4300 digits
        raise PredictSetupError(f"cannot read hints file {path}: {error}") from None
    deep = set(nesting.deep_members)
    if not isinstance(mapping, dict) or not all(isinstance(v, list) or k in deep for k, v in mapping.items()):
        raise PredictSetupError(f"hints file {path} must map photo paths to lists of hints, e.g. {HINTS_FILE_FORM}")
    read = HintsFile(path)
    for photo, hints in mapping.items():
        resolved = Path(photo).expanduser().resolve()
        read.keys[resolved] = photo
        if photo in deep:
            read.errors[resolved] = f"its hints in {path} nest more than {MAX_HINTS_DEPTH} levels deep; a photo's hints are a list of {{x, y, color}}"
        else:
            read.hints[resolved] = hints
    return read


HINTS_FILE_FORM = 'a JSON object of photo paths to lists of hints: {"photo.jpg": [{"x": 120, "y": 45, "color": "#2a6fdb"}]}'


def check_hints_keys(hints_file: HintsFile, photos: Sequence[PhotoSource]) -> None:
    """Every photo the hints file names is among the inputs; else PredictSetupError naming the
    keys that match none (a typo, a case difference, another current folder), with the input
    they were likely meant for."""
    found = {source.path.resolve(): source.path for source in photos if source.error is None}
    unmatched = [resolved for resolved in hints_file.keys if resolved not in found]
    if not unmatched:
        return
    described = [f"{hints_file.keys[resolved]!r}{likely_meant(resolved, found)}" for resolved in unmatched[:3]]
    more = f" and {len(unmatched) - 3} more" if len(unmatched) > 3 else ""
    raise PredictSetupError(
        f"hints file {hints_file.path} names {len(unmatched)} photo(s) not among the inputs: {', '.join(described)}{more}; "
        f"its paths are relative to the current folder ({Path.cwd()}) or absolute, as in --data.inputs"
    )


def likely_meant(resolved: Path, found: dict[Path, Path]) -> str:
    """`` (did you mean X?)`` for the input whose path differs only in case, or else has the same name."""
    for candidate, given in found.items():
        if str(candidate).lower() == str(resolved).lower():
            return f" (did you mean {given}?)"
    same_name = [given for candidate, given in found.items() if candidate.name.lower() == resolved.name.lower()]
    return f" (did you mean {same_name[0]}?)" if same_name else ""


def sidecar_path(photo: Path) -> Path:
    return photo.with_name(photo.stem + HINTS_SIDECAR)


def sidecar_hints(photo: Path) -> list | None:
    """The hints of ``photo.hints.json`` beside ``photo.jpg``, when it exists; HintError (that
    photo's failure) for one that cannot be read or nests too deep."""
    sidecar = sidecar_path(photo)
    if not sidecar.is_file():
        return None
    try:
        text = sidecar.read_text(encoding="utf-8")
        depth = json_nesting(text).depth
        if depth > MAX_HINTS_DEPTH:
            raise HintError(
                f"{photo}: its hints file {sidecar} nests {depth} levels deep (at most {MAX_HINTS_DEPTH}); "
                "it holds a list of hints, e.g. [{\"x\": 120, \"y\": 45, \"color\": \"#2a6fdb\"}]"
            )
        hints = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:  # ValueError: JSON, a 4300-digit integer
        if isinstance(error, HintError):
            raise
        raise HintError(f"{photo}: cannot read its hints file {sidecar}: {error}") from None
    return hints


class PhotoDataset(Dataset):
    """Decodes each photo at full resolution (torchvision.io or Pillow; EXIF orientation,
    alpha kept); unreadable files give an item with ``error`` set. A photo's hints come from
    ``hints_file`` (``--data.hints``) or its sidecar ``<name>.hints.json``, checked against its
    size; bad hints make that photo's error. ``announce_hints``: one line per photo that has
    hints (``photo.jpg: 3 hints from photo.hints.json``), so a user of predict sees that a
    file was found and taken; off for a library user and for ``evaluate``, which takes no hints.
    ``reference`` (``--data.reference``): a photo whose colors every photo is given as its global
    hint (a global-hints model; :mod:`lit_colorize.global_hints`), checked readable here."""

    def __init__(
        self,
        inputs: Sequence[str | Path],
        output_dir: str | Path | None = None,
        suffix: str = DEFAULT_SUFFIX,
        hints_file: str | Path | None = None,
        announce_hints: bool = False,
        reference: str | Path | None = None,
    ) -> None:
        self.photos = find_photos(inputs, output_dir, suffix)
        self.reference = None if reference is None else str(check_reference(reference))
        self.announce_hints = announce_hints
        self.hints_file = read_hints_file(hints_file) if hints_file is not None else None
        if self.hints_file is not None:
            check_hints_keys(self.hints_file, self.photos)

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, index: int) -> PhotoItem:
        source = self.photos[index]
        path, relative_dir = source.path, source.relative_dir
        if source.error is not None:
            return PhotoItem(str(path), relative_dir, error=source.error)
        if has_video_suffix(path):  # streamed by the writer, never decoded whole here
            return PhotoItem(str(path), relative_dir, is_video=True, error=self.video_hints_error(path))
        try:
            decoded = read_image(path)
        except ImageReadError as error:
            return PhotoItem(str(path), relative_dir, error=str(error))
        try:
            hints = self.photo_hints(path, *decoded.rgb.shape[-2:])
        except HintError as error:  # the writer prefixes the photo's path itself
            return PhotoItem(str(path), relative_dir, error=str(error).removeprefix(f"{path}: "))
        except (ValueError, TypeError, OverflowError, RecursionError) as error:  # hints the checks did not foresee
            return PhotoItem(str(path), relative_dir, error=f"its hints cannot be used: {type(error).__name__}: {error}")
        return PhotoItem(str(path), relative_dir, decoded.rgb, decoded.alpha, hints=hints or None, reference=self.reference)

    def photo_hints(self, path: Path, height: int, width: int) -> list:
        """The checked hints of the photo ``path`` (``--data.hints`` first, else its sidecar)."""
        resolved = path.resolve()
        if self.hints_file is not None and resolved in self.hints_file.errors:
            raise HintError(f"{path}: {self.hints_file.errors[resolved]}")
        raw = self.hints_file.hints.get(resolved) if self.hints_file is not None else None
        source = self.hints_file.path if raw is not None else sidecar_path(path).name
        hints = parse_hints(raw if raw is not None else sidecar_hints(path), str(path), height, width)
        if hints and self.announce_hints:  # flushed: a loader worker prints it, beside the main process
            print(f"{path}: {len(hints)} hint{'s' if len(hints) > 1 else ''} from {source}", flush=True)
        return hints

    def video_hints_error(self, path: Path) -> str | None:
        """Hints are for photos: a video named by ``--data.hints`` or with a sidecar fails alone,
        rather than being colorized as if they were not there."""
        if self.hints_file is not None and path.resolve() in self.hints_file.keys:
            where = f"hints file {self.hints_file.path} names it"
        elif sidecar_path(path).is_file():
            where = f"{sidecar_path(path)} lies beside it"
        elif self.reference is not None:
            return "--data.reference applies to photos only (a video is colorized without it); colorize the video in a run without it"
        else:
            return None
        return f"{where}, but hints apply to photos only (a video is colorized without hints); remove them, or colorize its frames as photos"


def check_reference(reference: str | Path) -> Path:
    """``--data.reference``: a readable image, or PredictSetupError naming it (before any photo is colorized)."""
    path = Path(reference).expanduser()
    try:
        read_image(path)
    except (ImageReadError, OSError) as error:
        raise PredictSetupError(f"--data.reference: {error}; give a readable photo whose colors every photo should take") from None
    return path


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
