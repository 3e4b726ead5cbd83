"""A user's photos and videos as prediction inputs: files and folders in, one decoded photo
(or one video, to be streamed by the writer) per item.

A photo that cannot be read becomes an item that carries its error instead of pixels, so a
run over a folder reports it by path and goes on with the rest.

What a photo is given besides its pixels, in files beside it (each wins over the option for all
photos; a bad one fails its photo alone, in one line naming the file):

- ``photo.hints.json``: local hints, ``[{"x": 120, "y": 45, "color": "#2a6fdb"}, ...]`` (or
  ``--data.hints FILE`` mapping photo paths to such lists). For a video, ``clip.hints.json``
  holds keyframe hints, each with its frame: ``[{"frame": 0, "x": 120, "y": 45, "color": ...}]``,
  carried along the clip (:mod:`lit_colorize.video.keyframes`).
- ``photo.reference.json``: the global hint (a model trained with ``global_hints: true``), one
  JSON object, either ``{"reference": "paris.jpg"}`` (a photo whose colors to take; a relative
  path is relative to the sidecar's folder) or ``{"palette": ["#2a6fdb", "#c8a27a"],
  "weights": [3, 1]}`` (weights optional). It wins over ``--data.reference`` / ``--data.palette``,
  and applies to a video's every frame as to a photo. A file of its own rather than a key of the
  hints file: local and global hints are given, kept and swapped separately (one reference for
  an album is copied beside each photo without touching its clicks), and the hints file stays
  the plain list it always was.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from lit_colorize.imageio import ImageReadError, read_image
from lit_colorize.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES, has_image_suffix, has_video_suffix, walk_files
from lit_colorize.outputs import DEFAULT_SUFFIX, OutputNames, PredictSetupError
from lit_colorize.global_hints import GlobalHintError, palette_distribution
from lit_colorize.prediction import GlobalHintRequest, PhotoItem
from lit_colorize.user_hints import HintError, parse_hints, shown

HINTS_SIDECAR = ".hints.json"  # photo.jpg's hints, found beside it: photo.hints.json
GLOBAL_SIDECAR = ".reference.json"  # photo.jpg's global hint: photo.reference.json
GLOBAL_SIDECAR_FORM = '{"reference": "paris.jpg"} or {"palette": ["#2a6fdb", "#c8a27a"], "weights": [3, 1]}'
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


def global_sidecar_path(photo: Path) -> Path:
    return photo.with_name(photo.stem + GLOBAL_SIDECAR)


def read_global_sidecar(photo: Path) -> GlobalHintRequest | None:
    """The global hint of ``photo.reference.json`` beside ``photo``, when it exists (its form:
    this module's docstring); HintError (that photo's failure, one line naming the file) for
    one that cannot be read, is not one of the two forms, or names a reference that is not a file.
    A palette's colors and weights are checked where the model's bins are known (predict)."""
    sidecar = global_sidecar_path(photo)
    if not sidecar.is_file():
        return None
    try:
        text = sidecar.read_text(encoding="utf-8")
        if json_nesting(text).depth > MAX_HINTS_DEPTH:
            raise ValueError(f"it nests more than {MAX_HINTS_DEPTH} levels deep")
        given = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise HintError(f"{photo}: cannot read its global hint file {sidecar}: {error}") from None
    keys = set(given) if isinstance(given, dict) else set()
    reference = given.get("reference") if isinstance(given, dict) else None
    if not keys or keys - {"reference", "palette", "weights"} or ("reference" in keys) == ("palette" in keys) or (
        "weights" in keys and "palette" not in keys
    ):
        raise HintError(f"{photo}: its global hint file {sidecar} must hold {GLOBAL_SIDECAR_FORM}, got {shown(given)}")
    if "palette" in keys:
        return GlobalHintRequest(palette=given["palette"], weights=given.get("weights"), origin=str(sidecar))
    if not isinstance(reference, str) or not reference:
        raise HintError(f"{photo}: its global hint file {sidecar}: reference must be a photo's path, got {shown(reference)}")
    path = sidecar.parent / Path(reference).expanduser()
    if not path.is_file():
        raise HintError(f"{photo}: its global hint file {sidecar} names reference {path}, which is not a file (relative to {sidecar.parent})")
    return GlobalHintRequest(reference=str(path), origin=str(sidecar))


def global_hint_option(reference: str | Path | None, palette: list | None, weights: list | None) -> GlobalHintRequest | None:
    """``--data.reference`` or ``--data.palette`` (with ``--data.palette_weights``): every input's
    global hint, checked before any photo is read (PredictSetupError naming the option)."""
    if reference is not None and palette is not None:
        raise PredictSetupError("give --data.reference or --data.palette, not both")
    if weights is not None and palette is None:
        raise PredictSetupError("--data.palette_weights needs --data.palette: one weight per palette color")
    if reference is not None:
        return GlobalHintRequest(reference=str(check_reference(reference)), origin="--data.reference")
    if palette is None:
        return None
    try:
        palette_distribution(palette, weights)  # the colors and weights; the model's bins come later
    except GlobalHintError as error:
        raise PredictSetupError(f"--data.palette: {error}") from None
    return GlobalHintRequest(palette=list(palette), weights=None if weights is None else list(weights), origin="--data.palette")


class PhotoDataset(Dataset):
    """Decodes each photo at full resolution (torchvision.io or Pillow; EXIF orientation,
    alpha kept); unreadable files give an item with ``error`` set. A photo's hints come from
    ``hints_file`` (``--data.hints``) or its sidecar ``<name>.hints.json``, checked against its
    size; bad hints make that photo's error. ``announce_hints``: one line per photo that has
    hints or its own global hint (``photo.jpg: 3 hints from photo.hints.json``), so a user of
    predict sees that a file was found and taken; off for a library user and for ``evaluate``,
    which takes no hints. ``reference`` (``--data.reference``) or ``palette`` with
    ``palette_weights`` (``--data.palette``): every input's global hint unless its own
    ``<name>.reference.json`` gives another (a global-hints model; :mod:`lit_colorize.global_hints`).
    A video's hints are keyframe hints, checked when the writer reads it."""

    def __init__(
        self,
        inputs: Sequence[str | Path],
        output_dir: str | Path | None = None,
        suffix: str = DEFAULT_SUFFIX,
        hints_file: str | Path | None = None,
        announce_hints: bool = False,
        reference: str | Path | None = None,
        palette: list | None = None,
        palette_weights: list | None = None,
    ) -> None:
        self.photos = find_photos(inputs, output_dir, suffix)
        self.global_hint = global_hint_option(reference, palette, palette_weights)
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
        try:
            global_hint = self.photo_global_hint(path)
        except HintError as error:
            return PhotoItem(str(path), relative_dir, error=str(error).removeprefix(f"{path}: "))
        if has_video_suffix(path):  # streamed by the writer, never decoded whole here
            return self.video_item(path, relative_dir, global_hint)
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
        return PhotoItem(str(path), relative_dir, decoded.rgb, decoded.alpha, hints=hints or None, global_hint=global_hint)

    def raw_hints(self, path: Path) -> tuple[Any, str]:
        """The hints given for ``path`` as written (``--data.hints`` first, else its sidecar;
        None: none) and the file they came from, as announced (a sidecar by its name)."""
        resolved = path.resolve()
        if self.hints_file is not None and resolved in self.hints_file.errors:
            raise HintError(f"{path}: {self.hints_file.errors[resolved]}")
        raw = self.hints_file.hints.get(resolved) if self.hints_file is not None else None
        if raw is not None:
            return raw, str(self.hints_file.path)
        return sidecar_hints(path), sidecar_path(path).name

    def photo_hints(self, path: Path, height: int, width: int) -> list:
        """The checked hints of the photo ``path`` (``--data.hints`` first, else its sidecar)."""
        raw, source = self.raw_hints(path)
        hints = parse_hints(raw, str(path), height, width)
        self.announce(path, f"{len(hints)} hint{'s' if len(hints) > 1 else ''}", source, bool(hints))
        return hints

    def photo_global_hint(self, path: Path) -> GlobalHintRequest | None:
        """``path``'s own ``<name>.reference.json`` (announced), else the run's option."""
        own = read_global_sidecar(path)
        if own is None:
            return self.global_hint
        given = f"reference {own.reference}" if own.reference is not None else own.describe()
        self.announce(path, given, global_sidecar_path(path).name, True)
        return own

    def video_item(self, path: Path, relative_dir: str, global_hint: GlobalHintRequest | None) -> PhotoItem:
        """A video's item: its global hint and its keyframe hints as given (checked against its
        frames when the writer reads it: :func:`lit_colorize.video.colorize.carried_hints`)."""
        try:
            raw, source = self.raw_hints(path)
        except HintError as error:
            return PhotoItem(str(path), relative_dir, is_video=True, error=str(error).removeprefix(f"{path}: "))
        if raw is not None and (isinstance(raw, (str, bytes, dict)) or not isinstance(raw, list)):
            error = f"its hints in {source} must be a list of keyframe hints, e.g. [{{\"frame\": 0, \"x\": 120, \"y\": 45, \"color\": \"#2a6fdb\"}}]"
            return PhotoItem(str(path), relative_dir, is_video=True, error=error)
        self.announce(path, f"{len(raw or [])} keyframe hint{'s' if len(raw or []) != 1 else ''}", source, bool(raw))
        return PhotoItem(str(path), relative_dir, is_video=True, global_hint=global_hint, keyframe_hints=raw or None)

    def announce(self, path: Path, what: str, source: str, given: bool) -> None:
        """``photo.jpg: 3 hints from photo.hints.json``, when ``given`` and announcing."""
        if given and self.announce_hints:  # flushed: a loader worker prints it, beside the main process
            print(f"{path}: {what} from {source}", flush=True)


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
