"""Writes that a crash or a kill cannot tear: one way for every file this package writes.

The data goes to a hidden temporary file beside the target (the same file system, so the
final rename is atomic), is synced to disk, then renamed over the target: a reader sees the
old file or the new one, never a part. The temporary name ``.<stem>.<pid>-<8 hex>.partial<suffix>``
is recognisable, so a later run removes what a killed one (SIGKILL) left once that process
is gone, and never takes it for a user's file. The file is created with mode 0o666, which the
umask trims as for any new file (``tempfile.mkstemp`` would give 0600, kept after the rename).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

PARTIAL_NAME = re.compile(r"\.(?P<stem>.+)\.(?P<pid>[0-9]+)-[0-9a-f]{8}\.partial(?:\.[A-Za-z0-9]+)?")


def is_partial(name: str) -> bool:
    return PARTIAL_NAME.fullmatch(name) is not None


def partial_path(final: Path) -> Path:
    """Where ``final`` is written before its atomic rename: hidden, in the same folder (a rename
    within one file system), named after this process so a later run knows when it is stale."""
    return final.with_name(f".{final.stem}.{os.getpid()}-{secrets.token_hex(4)}.partial{final.suffix}")


def create_exclusive(path: Path) -> int:
    """A new file for writing, with the mode the umask gives any new file."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", **open_args: Any) -> Iterator[IO[Any]]:
    """A file object whose content replaces ``path`` only when the block ends without an
    exception; on any exception (KeyboardInterrupt too) the temporary file is removed and
    ``path`` is untouched. ``mode`` is "wb" or "w" ("w" takes ``open``'s encoding etc.)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write writes a new file: mode 'wb' or 'w', got {mode!r}")
    with atomic_path(path) as temporary:
        with open(temporary, mode, **open_args) as stream:
            yield stream


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """For writers that only take a file name (``np.lib.format.open_memmap``, ONNX's ``save``):
    the temporary file's path, created empty; it is synced and renamed over ``path`` when the
    block ends without an exception, removed otherwise."""
    target = Path(path)
    temporary = partial_path(target)
    os.close(create_exclusive(temporary))
    try:
        yield temporary
        descriptor = os.open(temporary, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():  # a file of ours before we wrote any: left by an earlier process with this pid
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_partials(folder: Path, recursive: bool = True) -> list[Path]:
    """Removes the temporary files of killed writers under ``folder``: only names of the
    pattern above, only when the process that wrote them is gone (a process writing into the
    same folder at the same time keeps its own). Returns what was removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for directory, subfolders, names in os.walk(folder, onerror=lambda error: None):
        if not recursive:
            subfolders.clear()
        for name in names:
            match = PARTIAL_NAME.fullmatch(name)
            if match and not _process_alive(int(match["pid"])):
                path = Path(directory, name)
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                except OSError:  # not ours to remove after all (permissions): leave it
                    continue
                removed.append(path)
    return removed
