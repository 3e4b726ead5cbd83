"""The files ``lit-colorize predict`` writes, and the checks made before a run loads a model.

Every name predict writes is recognisable, so that a later run can tell it from a user's photo:

- an output is ``<photo stem><suffix>.png|.jpg`` (suffix ``_colorized_T{temperature}`` by default),
  ``<video stem><suffix>.mp4|.mkv`` for a video;
- while it is written it is a hidden temporary file ``.<output stem>.<pid>-<8 hex>.partial.png|.jpg``
  beside it, renamed over the final name only once complete. A run killed with SIGKILL leaves
  one behind; the next run into that folder removes it once the process that wrote it is gone.

Run-level problems (the output folder is a file, cannot be written, or is an input folder) are
found here before anything heavy happens, and raised as :class:`PredictSetupError`: one line
that names the folder and the option to change.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from lit_colorize.atomic import is_partial
from lit_colorize.errors import UserError

DEFAULT_SUFFIX = "_colorized_T{temperature}"
EXTENSIONS = {"png": ".png", "jpeg": ".jpg"}
VIDEO_EXTENSIONS = {"mp4": ".mp4", "mkv": ".mkv"}
# What ``f"{temperature:g}"`` gives: 0, 0.8, 1e-05, 1e+06.
_TEMPERATURE = r"[0-9][0-9.]*(?:e[+-]?[0-9]+)?"


class PredictSetupError(UserError, ValueError):
    """A problem with the run as a whole (output folder, inputs, options), found before the
    model loads; the message is one line naming the path and the option to change."""


def format_temperature(temperature: float) -> str:
    return f"{temperature:g}"


class OutputNames:
    """Tells the outputs of ``lit-colorize predict`` (the default suffix and ``suffix``) and its
    temporary files from the user's photos, by name alone.

    An empty suffix (outputs named like their photos) marks nothing: only the output folder
    tells those apart, which is why a folder input is never the output folder.
    """

    def __init__(self, suffix: str = DEFAULT_SUFFIX) -> None:
        patterns = {_suffix_pattern(s) for s in (DEFAULT_SUFFIX, suffix) if s.replace("{temperature}", "")}
        self._output = re.compile(rf".+(?:{'|'.join(sorted(patterns))})\.(?:png|jpg|mp4|mkv)") if patterns else None

    def is_output(self, name: str) -> bool:
        return self._output is not None and self._output.fullmatch(name) is not None

    def is_own(self, name: str) -> bool:
        """An output or a temporary file of one: never an input."""
        return self.is_output(name) or is_partial(name)


def _suffix_pattern(suffix: str) -> str:
    return _TEMPERATURE.join(re.escape(part) for part in suffix.split("{temperature}"))


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


def check_output_folder(output_dir: str | Path) -> Path:
    """The output folder as an absolute path, when it is a folder this process can write into
    (or can be created where it can write); else :class:`PredictSetupError`. Nothing is created."""
    folder = Path(output_dir).expanduser().absolute()
    existing = _nearest_existing(folder)
    option = "choose another with --writer.output_dir"
    if not existing.is_dir():
        what = "is a file" if existing == folder else f"cannot be created: {existing} is a file"
        raise PredictSetupError(f"output folder {folder} {what}; {option}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == folder else f" ({existing}, where it would be created, is not)"
        raise PredictSetupError(f"output folder {folder} is not writable{where}; {option}")
    return folder


def check_inputs(inputs: Iterable[str | Path], output_folder: Path) -> None:
    """Every input exists (a symlink that cannot be followed does: it is reported per photo),
    and no folder input is the output folder. A folder input *containing* the output folder
    is fine: the search skips the output folder."""
    resolved_output = output_folder.resolve()
    for entry in inputs:
        path = Path(entry).expanduser()
        if not os.path.lexists(path):
            raise PredictSetupError(f"input {path} does not exist: give photo files or folders of photos in --data.inputs")
        if path.is_dir() and path.resolve() == resolved_output:
            raise PredictSetupError(
                f"output folder {output_folder} is the input folder {path}: its outputs would be read as photos "
                f"by the next run; write them elsewhere, e.g. --writer.output_dir {path / 'colorized'} "
                "(an output folder inside an input folder is skipped when that folder is searched)"
            )


def check_predict_setup(
    output_dir: str | Path, inputs: Iterable[str | Path] | None, overwrite: bool, skip_existing: bool
) -> Path:
    """All run-level checks of ``lit-colorize predict``, before the model loads; returns the
    absolute output folder. ``inputs`` None: the data is not a folder of photos."""
    if overwrite and skip_existing:
        raise PredictSetupError("--overwrite and --skip_existing contradict each other; pass one of them")
    folder = check_output_folder(output_dir)
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        if not inputs:
            raise PredictSetupError("no inputs: pass photo files or folders with --data.inputs '[photo.jpg, folder/]'")
        check_inputs(inputs, folder)
    return folder
