"""Errors a user can fix, and how the ``lit-colorize`` command tells them: one line, no traceback.

Raise a :class:`UserError` subclass (or one of :data:`USER_ERROR_TYPES`) for anything the user
caused and can correct: a missing folder, a bad option value, a file that is not a checkpoint.
Its message is all the user sees, so it names the file or option and says what to do. Every
other exception is a bug and keeps its traceback. ``--debug`` or ``LIT_COLORIZE_DEBUG=1``
shows the traceback of user errors too.

Subclass the builtin that fits as well (``ValueError``, ``FileNotFoundError``...), so code that
catches those keeps working::

    class OutputFolderError(UserError, NotADirectoryError):
        \"\"\"The output folder is a file.\"\"\"
"""

from __future__ import annotations

import argparse
import errno
import math
import numbers
import os
from collections.abc import Iterable

DEBUG_ENV = "LIT_COLORIZE_DEBUG"


class UserError(Exception):
    """An error the user can fix; the CLI prints its message as one line, without a traceback."""


class ConfigError(UserError, ValueError):
    """An option value that cannot work, raised before anything is allocated."""


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be used: unreadable, unsafe, or not a lit-colorize checkpoint."""


class DataError(UserError, ValueError):
    """A dataset that cannot be used as given (no readable images, nothing left to train on)."""


# Builtin exceptions that, when they reach the command, come from the user's files and folders.
USER_ERROR_TYPES: tuple[type[BaseException], ...] = (
    UserError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)
# OSErrors of the disk rather than of the code: no space, read-only file system, quota.
USER_OS_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT})


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse that tells a wrong option in one line (a ConfigError, exit status 1 in
    ``lit-colorize``'s main) instead of printing its usage and exiting with 2; ``--help`` as usual."""

    def error(self, message: str):  # type: ignore[override] - raises instead of exiting
        raise ConfigError(f"{message}; see {self.prog} --help")


def is_user_error(error: BaseException) -> bool:
    return isinstance(error, USER_ERROR_TYPES) or (isinstance(error, OSError) and error.errno in USER_OS_ERRNOS)


def find_user_error(error: BaseException) -> BaseException | None:
    """``error`` or the exception it was raised from (jsonargparse wraps what a class's
    ``__init__`` raises in its own ValueError) when that is a user error; else None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if is_user_error(current):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def one_line(error: BaseException) -> str:
    """The error's message on one line: an OSError's strerror and file; of an error re-raised
    from a DataLoader worker (whose message is the worker's traceback), the original message."""
    text = str(error)
    if isinstance(error, OSError) and error.strerror and not isinstance(error, UserError):
        text = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    elif "Original Traceback (most recent call last):" in text:
        last = text.strip().splitlines()[-1]
        text = last.split(": ", 1)[1] if last.split(": ", 1)[0].endswith(type(error).__name__) else last
    return " ".join(text.split()) or type(error).__name__


def debug_requested(argv: Iterable[str] = ()) -> bool:
    """``--debug`` among the arguments, or ``LIT_COLORIZE_DEBUG`` set to anything but 0/false/empty."""
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


# Temperatures: T=0 is each bin's mode, T=1 its mean (annealed mean: softmax(logits / T)). Past
# T=10 nothing new happens: mode and mean of a bin lie within one bin of each other (at most ~17
# ab units at grid_size 18), so ten times that already spans the whole gamut (about -110..110)
# and every color is clipped; the annealed distribution is already ten times flattened.
MAX_TEMPERATURE = 10.0


def check_temperature(value: float, name: str = "temperature") -> float:
    """``value`` as a float when it is a finite number in [0, MAX_TEMPERATURE]; else ConfigError.
    NaN would decode to black and a negative T pushes colors away from the mean."""
    try:
        temperature = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number between 0 and {MAX_TEMPERATURE:g}, got {value!r}") from None
    if not math.isfinite(temperature) or not 0.0 <= temperature <= MAX_TEMPERATURE:
        raise ConfigError(
            f"{name} must be a finite number between 0 (each bin's mode) and {MAX_TEMPERATURE:g}, got {value!r}; "
            "T=1 is each bin's mean, 0.8 the usual choice"
        )
    return temperature


def check_temperatures(values: float | Iterable[float], name: str = "temperatures") -> list[float]:
    """A non-empty list of valid temperatures (a single number is a list of one); see :func:`check_temperature`."""
    listed = [values] if isinstance(values, (int, float)) else list(values)
    if not listed:
        raise ConfigError(f"{name} must list at least one temperature, e.g. [0.8]")
    return [check_temperature(value, name) for value in listed]


# The network's shorter side at predict time (``--writer.working_size``, ``evaluate --working_size``,
# ``Colorizer(working_size=...)``). The network sees up to 4 x working_size**2 pixels (a 4:1
# panorama; lit_colorize.fullres.MAX_WORKING_ASPECT), so memory grows with its square: at 2048
# the shipped model takes about 1.1 GB more for a 4:3 photo, at 100000 it would ask for 60 GB.
# The models here train at 64 to 256 pixels; far above that the network sees only a small part
# of the photo at once, so nothing useful lies beyond.
MAX_WORKING_SIZE = 2048


def check_working_size(value: object, name: str = "working_size") -> int | None:
    """``value`` as an int when it is a whole number from 1 to :data:`MAX_WORKING_SIZE` (None: the
    model's training size); else ConfigError. The one rule for the CLI and the Python API."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= MAX_WORKING_SIZE:
        raise ConfigError(
            f"{name} must be a whole number of pixels from 1 to {MAX_WORKING_SIZE} (the shorter side the network "
            f"sees; leave it out for the model's training size), got {value!r}"
        )
    return int(value)
